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
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
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
 * A Spring application over an SSL listener with client certificates (Kafka's PEM keystore
 * and truststore): KafkaAdmin creates the topic, a KafkaTemplate sends, a @KafkaListener in
 * a group reads every record. Runs when FJORD_SSL_BOOTSTRAP and FJORD_SSL_DIR are set.
 */
@Tag("groups")
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class SpringTlsTest {
  static final int RECORDS = 200;

  static final class Listener {
    final ConcurrentLinkedQueue<String> received = new ConcurrentLinkedQueue<>();
    final CountDownLatch latch = new CountDownLatch(RECORDS);

    @KafkaListener(id = "fjord-e2e-tls", topics = "${fjord.e2e.topic}", groupId = "${fjord.e2e.group}")
    void on(String value) {
      received.add(value);
      latch.countDown();
    }
  }

  static Map<String, Object> ssl() {
    Path dir = Path.of(System.getenv("FJORD_SSL_DIR"));
    Map<String, Object> p = new HashMap<>();
    p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, System.getenv("FJORD_SSL_BOOTSTRAP"));
    p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SSL");
    p.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
    p.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, dir.resolve("ca.pem").toString());
    p.put(SslConfigs.SSL_KEYSTORE_TYPE_CONFIG, "PEM");
    p.put(SslConfigs.SSL_KEYSTORE_LOCATION_CONFIG, dir.resolve("client-keystore.pem").toString());
    return p;
  }

  @Configuration
  @EnableKafka
  static class App {
    @Bean
    KafkaAdmin admin() {
      return new KafkaAdmin(ssl());
    }

    @Bean
    NewTopic topic(org.springframework.core.env.Environment env) {
      String rf = System.getenv("FJORD_REPLICATION_FACTOR");
      return TopicBuilder.name(env.getProperty("fjord.e2e.topic")).partitions(3)
          .replicas(rf == null || rf.isBlank() ? 1 : Integer.parseInt(rf.trim())).build();
    }

    @Bean
    KafkaTemplate<String, String> template() {
      Map<String, Object> p = ssl();
      p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
      p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
      return new KafkaTemplate<>(new DefaultKafkaProducerFactory<>(p));
    }

    @Bean
    ConcurrentKafkaListenerContainerFactory<String, String> kafkaListenerContainerFactory() {
      Map<String, Object> p = ssl();
      p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
      p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
      p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
      var f = new ConcurrentKafkaListenerContainerFactory<String, String>();
      f.setConsumerFactory(new DefaultKafkaConsumerFactory<>(p));
      return f;
    }

    @Bean
    Listener listener() {
      return new Listener();
    }
  }

  @Test
  void aSpringApplicationSendsAndListensOverSsl() throws Exception {
    assumeTrue(System.getenv("FJORD_SSL_BOOTSTRAP") != null && System.getenv("FJORD_SSL_DIR") != null,
        "FJORD_SSL_BOOTSTRAP and FJORD_SSL_DIR not set: no SSL listener");
    String id = UUID.randomUUID().toString().substring(0, 8);
    try (var ctx = new AnnotationConfigApplicationContext()) {
      ctx.getEnvironment().getPropertySources().addFirst(new MapPropertySource("e2e",
          Map.of("fjord.e2e.topic", "e2e-spring-tls-" + id, "fjord.e2e.group", "e2e-spring-tls-" + id)));
      ctx.register(App.class);
      ctx.refresh();
      @SuppressWarnings("unchecked")
      KafkaTemplate<String, String> template = ctx.getBean(KafkaTemplate.class);
      String topic = ctx.getEnvironment().getProperty("fjord.e2e.topic");
      for (int i = 0; i < RECORDS; i++) {
        template.send(topic, "k" + (i % 8), "v-" + i).get(60, TimeUnit.SECONDS);
      }
      Listener listener = ctx.getBean(Listener.class);
      assertTrue(listener.latch.await(90, TimeUnit.SECONDS),
          listener.received.size() + " of " + RECORDS + " records heard over SSL");
      Set<String> want = new TreeSet<>();
      for (int i = 0; i < RECORDS; i++) want.add("v-" + i);
      assertEquals(want, new TreeSet<>(List.copyOf(listener.received)));
      assertEquals(RECORDS, listener.received.size(), "each record heard once");
    }
  }
}
