package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.io.InputStream;
import java.util.Properties;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.junit.jupiter.api.Test;

/** The suite reports results for a client version: make sure that is the one on the classpath. */
class ClientVersionTest {
  @Test
  void clientOnTheClasspathIsTheOneAskedFor() throws Exception {
    // Read from the kafka-clients jar itself (the class that reads it moved between 3.x and 4.x).
    Properties p = new Properties();
    try (InputStream in = KafkaProducer.class.getResourceAsStream("/kafka/kafka-version.properties")) {
      assertNotNull(in, "kafka-version.properties in kafka-clients");
      p.load(in);
    }
    assertEquals(System.getProperty("kafka.client.version"), p.getProperty("version"));
  }
}
