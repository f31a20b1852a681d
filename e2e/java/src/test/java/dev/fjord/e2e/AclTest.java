package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.GroupAuthorizationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A principal without ACLs is refused on a guarded topic and group with the exceptions
 * Kafka's client gives. Over SASL_PLAINTEXT (FJORD_SASL_BOOTSTRAP) to a broker with the
 * standard authorizer and allow.everyone.if.no.acl.found=true: FJORD_SASL_USER (a super user)
 * makes a topic prefix and a group prefix its own with PREFIXED ALLOW ACLs, which guards
 * them; FJORD_SASL_DENIED_USER has no ACL there. Skipped without those variables.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class AclTest {
  static String prefix;
  static String guardedTopic;
  static String openTopic;

  static Properties as(String user, String password) {
    return Security.sasl(Security.require("FJORD_SASL_BOOTSTRAP"), "SASL_PLAINTEXT",
        "SCRAM-SHA-512", user, password);
  }

  static Properties owner() {
    return as(Security.require("FJORD_SASL_USER"), Security.require("FJORD_SASL_PASSWORD"));
  }

  static Properties denied() {
    return as(Security.require("FJORD_SASL_DENIED_USER"),
        Security.require("FJORD_SASL_DENIED_PASSWORD"));
  }

  static List<AclBinding> ownersAcls() {
    String principal = "User:" + Security.require("FJORD_SASL_USER");
    return List.of(ResourceType.TOPIC, ResourceType.GROUP).stream()
        .map(t -> new AclBinding(new ResourcePattern(t, prefix, PatternType.PREFIXED),
            new AccessControlEntry(principal, "*", AclOperation.ALL, AclPermissionType.ALLOW)))
        .toList();
  }

  @BeforeAll
  static void guard() throws Exception {
    Properties owner = owner();
    Security.require("FJORD_SASL_DENIED_USER");
    prefix = Broker.uniqueTopic("acl") + "-";
    guardedTopic = prefix + "t";
    openTopic = "open-" + guardedTopic; // outside the prefix: no ACL names it
    try (Admin admin = Admin.create(owner)) {
      Broker.createTopic(admin, guardedTopic, 1, Map.of());
      Broker.createTopic(admin, openTopic, 1, Map.of());
      admin.createAcls(ownersAcls()).all().get(60, TimeUnit.SECONDS);
    }
  }

  @AfterAll
  static void unguard() throws Exception {
    if (prefix == null) return;
    try (Admin admin = Admin.create(owner())) {
      admin.deleteAcls(ownersAcls().stream().map(AclBinding::toFilter).toList())
          .all().get(60, TimeUnit.SECONDS);
      admin.deleteTopics(List.of(guardedTopic, openTopic)).all().get(60, TimeUnit.SECONDS);
    }
  }

  static KafkaProducer<String, String> producer(Properties client) {
    return new KafkaProducer<>(Security.with(client,
        ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName(),
        ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName(),
        ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000"));
  }

  static KafkaConsumer<String, String> consumer(Properties client, String group) {
    return new KafkaConsumer<>(Security.with(client,
        ConsumerConfig.GROUP_ID_CONFIG, group,
        ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName(),
        ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName()));
  }

  /** Polls until the consumer throws, failing if it reads a record or the deadline passes. */
  static RuntimeException pollUntilRefused(KafkaConsumer<String, String> c) {
    long deadline = System.nanoTime() + Broker.DEADLINE.toNanos();
    while (System.nanoTime() < deadline) {
      try {
        assertTrue(c.poll(Duration.ofMillis(500)).isEmpty(), "read records the ACLs keep out");
      } catch (TopicAuthorizationException | GroupAuthorizationException e) {
        return e;
      }
    }
    throw new AssertionError("not refused within " + Broker.DEADLINE);
  }

  @Test
  void theOwnerProducesAndTheDeniedPrincipalIsRefused() throws Exception {
    try (var p = producer(owner())) {
      p.send(new ProducerRecord<>(guardedTopic, "allowed")).get(60, TimeUnit.SECONDS);
    }
    try (var p = producer(denied())) {
      ExecutionException e = assertThrows(ExecutionException.class,
          () -> p.send(new ProducerRecord<>(guardedTopic, "denied")).get(60, TimeUnit.SECONDS));
      assertInstanceOf(TopicAuthorizationException.class, e.getCause());
    }
  }

  @Test
  @Tag("groups")
  void theDeniedPrincipalCannotReadTheTopic() {
    try (var c = consumer(denied(), Broker.uniqueTopic("acl-open-group"))) {
      c.subscribe(List.of(guardedTopic));
      assertInstanceOf(TopicAuthorizationException.class, pollUntilRefused(c));
    }
  }

  @Test
  @Tag("groups")
  void theDeniedPrincipalCannotJoinTheGroup() {
    try (var c = consumer(denied(), prefix + "g")) {
      c.subscribe(List.of(openTopic));
      assertInstanceOf(GroupAuthorizationException.class, pollUntilRefused(c));
    }
  }
}
