package dev.fjord.e2e.spring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.MapPropertySource;
import org.springframework.kafka.annotation.EnableKafka;
import org.springframework.kafka.annotation.KafkaListener;
import org.springframework.kafka.config.ConcurrentKafkaListenerContainerFactory;
import org.springframework.kafka.config.KafkaListenerEndpointRegistry;
import org.springframework.kafka.config.TopicBuilder;
import org.springframework.kafka.core.ConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.core.KafkaAdmin;
import org.springframework.kafka.core.KafkaTemplate;
import org.springframework.kafka.core.ProducerFactory;
import org.springframework.kafka.listener.ConcurrentMessageListenerContainer;
import org.springframework.kafka.support.SendResult;
import org.springframework.kafka.support.serializer.JsonDeserializer;
import org.springframework.kafka.support.serializer.JsonSerializer;

/**
 * What a Spring application does with Kafka, wired with spring-context alone: a NewTopic
 * bean created through KafkaAdmin, a KafkaTemplate sending JSON, and a @KafkaListener
 * container of three consumers in one group reading it back.
 */
@Tag("groups")
@Timeout(value = 180, unit = TimeUnit.SECONDS)
@SuppressWarnings("removal") // JsonSerializer/JsonDeserializer (Jackson 2) are deprecated in 4.x but still what most apps use
class SpringKafkaTest {
  static final Duration DEADLINE = Duration.ofSeconds(60);
  static final int RECORDS = 600;
  static final int PARTITIONS = 6;
  static final String LISTENER = "fjord-e2e-listener";

  /** A record as the listener saw it, with the consumer thread that delivered it. */
  record Received(Greeting value, String key, int partition, long offset, String thread) {}

  static final class Listener {
    final ConcurrentLinkedQueue<Received> received = new ConcurrentLinkedQueue<>();
    final CountDownLatch latch = new CountDownLatch(RECORDS);

    @KafkaListener(id = LISTENER, topics = "${fjord.e2e.topic}", groupId = "${fjord.e2e.group}",
        concurrency = "3")
    void on(ConsumerRecord<String, Greeting> r) {
      received.add(new Received(r.value(), r.key(), r.partition(), r.offset(), Thread.currentThread().getName()));
      latch.countDown();
    }
  }

  @Configuration
  @EnableKafka
  static class Config {
    @Value("${fjord.e2e.bootstrap}")
    String bootstrap;

    @Bean
    KafkaAdmin kafkaAdmin() {
      KafkaAdmin admin = new KafkaAdmin(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap));
      admin.setFatalIfBrokerNotAvailable(true); // a topic that was not created fails the context
      return admin;
    }

    @Bean
    NewTopic topic(@Value("${fjord.e2e.topic}") String name) {
      // FJORD_REPLICATION_FACTOR: 3 when the suite runs against a 3-broker cluster.
      String rf = System.getenv("FJORD_REPLICATION_FACTOR");
      int replicas = rf == null || rf.isBlank() ? 1 : Integer.parseInt(rf.trim());
      return TopicBuilder.name(name).partitions(PARTITIONS).replicas(replicas).build();
    }

    @Bean
    ProducerFactory<String, Greeting> producerFactory() {
      return new DefaultKafkaProducerFactory<>(Map.of(
          ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
          ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class,
          ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, JsonSerializer.class));
    }

    @Bean
    KafkaTemplate<String, Greeting> kafkaTemplate(ProducerFactory<String, Greeting> pf) {
      return new KafkaTemplate<>(pf);
    }

    @Bean
    ConsumerFactory<String, Greeting> consumerFactory() {
      Map<String, Object> p = new HashMap<>();
      p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
      // The classic group protocol, which is what Fjord speaks; said explicitly so a change
      // of the client's default cannot switch protocols.
      p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
      p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
      p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10000);
      p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
      p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
      p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, JsonDeserializer.class);
      // The type comes from the serializer's __TypeId__ header; only this package may be built.
      p.put(JsonDeserializer.TRUSTED_PACKAGES, Greeting.class.getPackageName());
      return new DefaultKafkaConsumerFactory<>(p);
    }

    @Bean
    ConcurrentKafkaListenerContainerFactory<String, Greeting> kafkaListenerContainerFactory(
        ConsumerFactory<String, Greeting> cf) {
      var factory = new ConcurrentKafkaListenerContainerFactory<String, Greeting>();
      factory.setConsumerFactory(cf);
      return factory;
    }

    @Bean
    Listener listener() {
      return new Listener();
    }
  }

  static String bootstrap() {
    String b = System.getProperty("fjord.bootstrap");
    if (b == null || b.isBlank()) b = System.getenv("FJORD_BOOTSTRAP");
    if (b == null || b.isBlank()) fail("set FJORD_BOOTSTRAP (or -Dfjord.bootstrap) to the broker's host:port");
    return b;
  }

  @Test
  void templateToConcurrentListenerWithJson() throws Exception {
    String suffix = UUID.randomUUID().toString().substring(0, 8);
    String topic = "e2e-spring-json-" + suffix;
    String group = "e2e-spring-group-" + suffix;
    try (var ctx = new AnnotationConfigApplicationContext()) {
      ctx.getEnvironment().getPropertySources().addFirst(new MapPropertySource("fjord-e2e", Map.of(
          "fjord.e2e.bootstrap", bootstrap(), "fjord.e2e.topic", topic, "fjord.e2e.group", group)));
      ctx.register(Config.class);
      ctx.refresh(); // KafkaAdmin creates the NewTopic, the listener container starts

      KafkaAdmin kafkaAdmin = ctx.getBean(KafkaAdmin.class);
      var described = kafkaAdmin.describeTopics(topic).get(topic);
      assertNotNull(described, "NewTopic bean created " + topic);
      assertEquals(PARTITIONS, described.partitions().size());

      // Three consumers, two partitions each, before anything is sent: no rebalance while reading.
      var container = (ConcurrentMessageListenerContainer<?, ?>)
          ctx.getBean(KafkaListenerEndpointRegistry.class).getListenerContainer(LISTENER);
      assertNotNull(container);
      assertEquals(3, container.getContainers().size(), "concurrency");
      waitUntil("3 consumers with 2 partitions each", () -> container.getContainers().stream()
          .allMatch(c -> c.getAssignedPartitions() != null && c.getAssignedPartitions().size() == 2)
          && new HashSet<>(container.getAssignedPartitions()).size() == PARTITIONS);

      @SuppressWarnings("unchecked")
      KafkaTemplate<String, Greeting> template = ctx.getBean(KafkaTemplate.class);
      Map<Integer, Greeting> sentValues = new HashMap<>();
      List<CompletableFuture<SendResult<String, Greeting>>> futures = new ArrayList<>();
      for (int i = 0; i < RECORDS; i++) {
        var g = new Greeting(i, "hello " + i, List.of("t" + (i % 3), "fjord"), i / 4.0);
        sentValues.put(i, g);
        futures.add(template.send(topic, "key-" + (i % 12), g));
      }
      template.flush();
      Map<Integer, SendResult<String, Greeting>> sent = new HashMap<>();
      for (int i = 0; i < RECORDS; i++) sent.put(i, futures.get(i).get(DEADLINE.toSeconds(), TimeUnit.SECONDS));

      Listener listener = ctx.getBean(Listener.class);
      assertTrue(listener.latch.await(DEADLINE.toSeconds(), TimeUnit.SECONDS),
          "listener received " + (RECORDS - listener.latch.getCount()) + " of " + RECORDS + " within " + DEADLINE);

      // Each record once, equal to what was sent, where the template said it went.
      Map<Integer, Received> bySeq = new HashMap<>();
      for (Received r : listener.received) {
        assertNotNull(r.value(), "value deserialized");
        Received before = bySeq.put(r.value().seq(), r);
        if (before != null) fail("received twice: " + before + " and " + r);
        assertEquals(sentValues.get(r.value().seq()), r.value(), "JSON round trip");
        var meta = sent.get(r.value().seq()).getRecordMetadata();
        assertEquals(meta.partition(), r.partition(), "partition of " + r.value().seq());
        assertEquals(meta.offset(), r.offset(), "offset of " + r.value().seq());
        assertEquals("key-" + (r.value().seq() % 12), r.key());
      }
      assertEquals(sentValues.keySet(), bySeq.keySet(), "sequence numbers received");

      // The three consumer threads each delivered their own partitions, and more than one worked.
      Map<String, Set<Integer>> partitionsByThread = new HashMap<>();
      for (Received r : listener.received) {
        partitionsByThread.computeIfAbsent(r.thread(), t -> new HashSet<>()).add(r.partition());
      }
      Set<Integer> seen = new HashSet<>();
      for (var e : partitionsByThread.entrySet()) {
        for (int p : e.getValue()) assertTrue(seen.add(p), "partition " + p + " delivered by two threads");
      }
      assertTrue(partitionsByThread.size() > 1, "records delivered by " + partitionsByThread.keySet());

      // The container commits what it processed: the group's offsets reach the end.
      Map<TopicPartition, Long> ends = new HashMap<>();
      for (var s : sent.values()) {
        var m = s.getRecordMetadata();
        ends.merge(new TopicPartition(topic, m.partition()), m.offset() + 1, Math::max);
      }
      try (Admin admin = Admin.create(kafkaAdmin.getConfigurationProperties())) {
        waitUntil("group " + group + " committed to the end", () -> {
          try {
            Map<TopicPartition, Long> committed = new HashMap<>();
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e :
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get().entrySet()) {
              if (e.getValue() != null) committed.put(e.getKey(), e.getValue().offset());
            }
            return committed.equals(ends);
          } catch (Exception e) {
            return false;
          }
        });
        ctx.close(); // stop the listener before the topic goes
        admin.deleteTopics(List.of(topic)).all().get();
      }
    }
  }

  static void waitUntil(String what, BooleanSupplier condition) throws InterruptedException {
    long deadline = System.nanoTime() + DEADLINE.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) fail("not true within " + DEADLINE + ": " + what);
      Thread.sleep(100); // poll interval, not a synchronisation
    }
  }
}
