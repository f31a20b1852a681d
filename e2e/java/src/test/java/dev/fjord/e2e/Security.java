package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The secured listeners of the broker under test, from the environment e2e/compat.sh passes
 * on (a test needing one that is not set is skipped), and the client settings for each, with
 * Kafka's PEM keystore and truststore (ssl.keystore.type=PEM, ssl.truststore.type=PEM) over
 * the files e2e/tls/certs.sh wrote to FJORD_SSL_DIR.
 */
final class Security {
  private Security() {}

  /** The variable's value; the calling test is skipped when it is not set. */
  static String require(String name) {
    String v = System.getenv(name);
    assumeTrue(v != null && !v.isBlank(), name + " not set: no such listener on this broker");
    return v.trim();
  }

  static Path sslDir() {
    return Path.of(require("FJORD_SSL_DIR"));
  }

  /** SSL to `bootstrap`, with the keystore `identity`-keystore.pem or none. */
  static Properties ssl(String bootstrap, String identity) {
    Properties p = truststore(bootstrap, "SSL");
    if (identity != null) {
      p.put(SslConfigs.SSL_KEYSTORE_TYPE_CONFIG, "PEM");
      p.put(SslConfigs.SSL_KEYSTORE_LOCATION_CONFIG,
          sslDir().resolve(identity + "-keystore.pem").toString());
    }
    return p;
  }

  /** SASL_PLAINTEXT or SASL_SSL (trusting the test CA, no client certificate) as `user`. */
  static Properties sasl(String bootstrap, String protocol, String mechanism, String user,
      String password) {
    Properties p;
    if (protocol.equals("SASL_SSL")) {
      p = truststore(bootstrap, protocol);
    } else {
      p = new Properties();
      p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
      p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, protocol);
    }
    String module = mechanism.equals("PLAIN")
        ? "org.apache.kafka.common.security.plain.PlainLoginModule"
        : "org.apache.kafka.common.security.scram.ScramLoginModule";
    p.put(SaslConfigs.SASL_MECHANISM, mechanism);
    p.put(SaslConfigs.SASL_JAAS_CONFIG,
        module + " required username=\"" + user + "\" password=\"" + password + "\";");
    return p;
  }

  private static Properties truststore(String bootstrap, String protocol) {
    Properties p = new Properties();
    p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, protocol);
    p.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
    p.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, sslDir().resolve("ca.pem").toString());
    return p;
  }

  /** `base` with the settings given as key, value pairs added. */
  static Properties with(Properties base, Object... kv) {
    Properties p = new Properties();
    p.putAll(base);
    for (int i = 0; i < kv.length; i += 2) p.put(kv[i], kv[i + 1]);
    return p;
  }

  /**
   * Creates a one-partition topic with the client settings `client`, produces `records`
   * values v-0.. and reads them back from the beginning: each once, in order.
   */
  static void roundTrip(Properties client, String topic, int records) throws Exception {
    try (Admin admin = Admin.create(client)) {
      Broker.createTopic(admin, topic, 1, Map.of());
    }
    Properties pp = with(client,
        ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName(),
        ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
      for (int i = 0; i < records; i++) producer.send(new ProducerRecord<>(topic, "v-" + i));
      producer.flush();
    }
    Properties cp = with(client,
        ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName(),
        ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    List<String> got = new ArrayList<>();
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
      TopicPartition tp = new TopicPartition(topic, 0);
      consumer.assign(List.of(tp));
      consumer.seekToBeginning(List.of(tp));
      long deadline = System.nanoTime() + Broker.DEADLINE.toNanos();
      while (got.size() < records && System.nanoTime() < deadline) {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
          got.add(r.value());
        }
      }
    }
    List<String> want = new ArrayList<>();
    for (int i = 0; i < records; i++) want.add("v-" + i);
    assertEquals(want, got);
  }
}
