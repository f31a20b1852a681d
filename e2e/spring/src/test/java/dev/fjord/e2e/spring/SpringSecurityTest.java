package dev.fjord.e2e.spring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.MapPropertySource;
import org.springframework.kafka.annotation.EnableKafka;
import org.springframework.kafka.annotation.KafkaListener;
import org.springframework.kafka.config.ConcurrentKafkaListenerContainerFactory;
import org.springframework.kafka.config.TopicBuilder;
import org.springframework.kafka.core.DefaultKafkaConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.core.KafkaAdmin;
import org.springframework.kafka.core.KafkaTemplate;

/**
 * A Spring application over each secured listener: KafkaAdmin creates the topic, a
 * KafkaTemplate sends, a @KafkaListener in a group reads every record. Listeners come from
 * the environment e2e/compat.sh passes on (FJORD_SSL_BOOTSTRAP requiring client
 * certificates, FJORD_SSL_NOCERT_BOOTSTRAP asking for none, FJORD_SASL_SSL_BOOTSTRAP and
 * FJORD_SASL_BOOTSTRAP as FJORD_SASL_USER, the certificates in FJORD_SSL_DIR); a case whose
 * listener is not set is skipped.
 */
@Tag("groups")
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class SpringSecurityTest {
  static final int RECORDS = 200;

  /** The client settings of the listener under test, which every Kafka bean starts from. */
  record Client(Map<String, Object> settings) {
    Map<String, Object> with(Object... kv) {
      Map<String, Object> p = new HashMap<>(settings);
      for (int i = 0; i < kv.length; i += 2) p.put((String) kv[i], kv[i + 1]);
      return p;
    }
  }

  static final class Listener {
    final ConcurrentLinkedQueue<String> received = new ConcurrentLinkedQueue<>();
    final CountDownLatch latch = new CountDownLatch(RECORDS);

    @KafkaListener(id = "fjord-e2e-secure", topics = "${fjord.e2e.topic}", groupId = "${fjord.e2e.group}")
    void on(String value) {
      received.add(value);
      latch.countDown();
    }
  }

  static String env(String name) {
    String v = System.getenv(name);
    assumeTrue(v != null && !v.isBlank(), name + " not set: no such listener on this broker");
    return v.trim();
  }

  /**
   * Settings for `protocol` on the listener named by the variable `bootstrapVar`: SSL with
   * the client certificate when `mechanism` is "cert", without one when "none"; SASL with
   * `mechanism` otherwise (SASL_SSL trusting the test CA).
   */
  static Client client(String bootstrapVar, String protocol, String mechanism) {
    Map<String, Object> p = new HashMap<>();
    p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, env(bootstrapVar));
    p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, protocol);
    if (protocol.endsWith("SSL")) {
      Path dir = Path.of(env("FJORD_SSL_DIR"));
      p.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
      p.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, dir.resolve("ca.pem").toString());
      if (mechanism.equals("cert")) {
        p.put(SslConfigs.SSL_KEYSTORE_TYPE_CONFIG, "PEM");
        p.put(SslConfigs.SSL_KEYSTORE_LOCATION_CONFIG, dir.resolve("client-keystore.pem").toString());
      }
    }
    if (protocol.startsWith("SASL")) {
      String module = mechanism.equals("PLAIN")
          ? "org.apache.kafka.common.security.plain.PlainLoginModule"
          : "org.apache.kafka.common.security.scram.ScramLoginModule";
      p.put(SaslConfigs.SASL_MECHANISM, mechanism);
      p.put(SaslConfigs.SASL_JAAS_CONFIG, module + " required username=\"" + env("FJORD_SASL_USER")
          + "\" password=\"" + env("FJORD_SASL_PASSWORD") + "\";");
    }
    return new Client(p);
  }

  @Configuration
  @EnableKafka
  static class App {
    @Bean
    KafkaAdmin admin(Client client) {
      return new KafkaAdmin(client.settings());
    }

    @Bean
    NewTopic topic(org.springframework.core.env.Environment env) {
      String rf = System.getenv("FJORD_REPLICATION_FACTOR");
      return TopicBuilder.name(env.getProperty("fjord.e2e.topic")).partitions(3)
          .replicas(rf == null || rf.isBlank() ? 1 : Integer.parseInt(rf.trim())).build();
    }

    @Bean
    KafkaTemplate<String, String> template(Client client) {
      return new KafkaTemplate<>(new DefaultKafkaProducerFactory<>(client.with(
          ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class,
          ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class)));
    }

    @Bean
    ConcurrentKafkaListenerContainerFactory<String, String> kafkaListenerContainerFactory(Client client) {
      var f = new ConcurrentKafkaListenerContainerFactory<String, String>();
      f.setConsumerFactory(new DefaultKafkaConsumerFactory<>(client.with(
          ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class,
          ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class,
          ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest")));
      return f;
    }

    @Bean
    Listener listener() {
      return new Listener();
    }
  }

  @ParameterizedTest(name = "{1} {2}")
  @CsvSource({
    "FJORD_SSL_BOOTSTRAP, SSL, cert",
    "FJORD_SSL_NOCERT_BOOTSTRAP, SSL, none",
    "FJORD_SASL_SSL_BOOTSTRAP, SASL_SSL, SCRAM-SHA-512",
    "FJORD_SASL_SSL_BOOTSTRAP, SASL_SSL, PLAIN",
    "FJORD_SASL_BOOTSTRAP, SASL_PLAINTEXT, SCRAM-SHA-256",
  })
  void aSpringApplicationSendsAndListens(String bootstrapVar, String protocol, String mechanism)
      throws Exception {
    Client client = client(bootstrapVar, protocol, mechanism);
    String id = "e2e-spring-" + protocol.toLowerCase() + "-" + UUID.randomUUID().toString().substring(0, 8);
    try (var ctx = new AnnotationConfigApplicationContext()) {
      ctx.getEnvironment().getPropertySources().addFirst(new MapPropertySource("e2e",
          Map.of("fjord.e2e.topic", id, "fjord.e2e.group", id)));
      ctx.registerBean(Client.class, () -> client);
      ctx.register(App.class);
      ctx.refresh();
      @SuppressWarnings("unchecked")
      KafkaTemplate<String, String> template = ctx.getBean(KafkaTemplate.class);
      for (int i = 0; i < RECORDS; i++) {
        template.send(id, "k" + (i % 8), "v-" + i).get(60, TimeUnit.SECONDS);
      }
      Listener listener = ctx.getBean(Listener.class);
      assertTrue(listener.latch.await(90, TimeUnit.SECONDS),
          listener.received.size() + " of " + RECORDS + " records heard over " + protocol);
      Set<String> want = new TreeSet<>();
      for (int i = 0; i < RECORDS; i++) want.add("v-" + i);
      assertEquals(want, new TreeSet<>(List.copyOf(listener.received)));
      assertEquals(RECORDS, listener.received.size(), "each record heard once");
    }
  }
}
