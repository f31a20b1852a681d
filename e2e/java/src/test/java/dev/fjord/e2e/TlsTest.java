package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.SslAuthenticationException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The Java client over an SSL listener that requires client certificates, with Kafka's PEM
 * keystore and truststore (ssl.keystore.type=PEM, ssl.truststore.type=PEM). Runs when
 * FJORD_SSL_BOOTSTRAP names the SSL listener and FJORD_SSL_DIR holds what e2e/tls/certs.sh
 * wrote; skipped otherwise.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class TlsTest {
  static final int RECORDS = 500;
  static String bootstrap;
  static Path dir;

  @BeforeAll
  static void sslListener() {
    bootstrap = System.getenv("FJORD_SSL_BOOTSTRAP");
    String d = System.getenv("FJORD_SSL_DIR");
    assumeTrue(bootstrap != null && !bootstrap.isBlank() && d != null && !d.isBlank(),
        "FJORD_SSL_BOOTSTRAP and FJORD_SSL_DIR not set: no SSL listener");
    dir = Path.of(d);
  }

  /** SSL with the keystore `identity`-keystore.pem, or none. */
  static Properties ssl(String identity) {
    Properties p = new Properties();
    p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SSL");
    p.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
    p.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, dir.resolve("ca.pem").toString());
    if (identity != null) {
      p.put(SslConfigs.SSL_KEYSTORE_TYPE_CONFIG, "PEM");
      p.put(SslConfigs.SSL_KEYSTORE_LOCATION_CONFIG,
          dir.resolve(identity + "-keystore.pem").toString());
    }
    return p;
  }

  @Test
  void recordsGoAndComeBackOverSslAndMetadataNamesTheSslPort() throws Exception {
    String topic = Broker.uniqueTopic("tls");
    try (Admin admin = Admin.create(ssl("client"))) {
      Broker.createTopic(admin, topic, 1, Map.of());
      int port = Integer.parseInt(bootstrap.substring(bootstrap.lastIndexOf(':') + 1));
      for (Node n : admin.describeCluster().nodes().get(60, TimeUnit.SECONDS)) {
        assertEquals(port, n.port(), "DescribeCluster over SSL names the SSL listener");
      }
    }
    Properties pp = ssl("client");
    pp.put("key.serializer", StringSerializer.class.getName());
    pp.put("value.serializer", StringSerializer.class.getName());
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
      for (int i = 0; i < RECORDS; i++) producer.send(new ProducerRecord<>(topic, "v-" + i));
      producer.flush();
    }
    Properties cp = ssl("client");
    cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    List<String> got = new ArrayList<>();
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
      TopicPartition tp = new TopicPartition(topic, 0);
      consumer.assign(List.of(tp));
      consumer.seekToBeginning(List.of(tp));
      long deadline = System.nanoTime() + Broker.DEADLINE.toNanos();
      while (got.size() < RECORDS && System.nanoTime() < deadline) {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
          got.add(r.value());
        }
      }
    }
    List<String> want = new ArrayList<>();
    for (int i = 0; i < RECORDS; i++) want.add("v-" + i);
    assertEquals(want, got);
  }

  @Test
  void noCertificateOrAnUntrustedOneIsRefusedAsKafkaRefusesIt() {
    for (String identity : new String[] {null, "stranger"}) {
      Properties p = ssl(identity);
      p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
      p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
      try (Admin admin = Admin.create(p)) {
        ExecutionException e = assertThrows(ExecutionException.class,
            () -> admin.describeCluster().nodes().get(30, TimeUnit.SECONDS));
        assertInstanceOf(SslAuthenticationException.class, e.getCause(), "keystore " + identity);
      }
    }
  }
}
