package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.apache.kafka.common.utils.AppInfoParser;
import org.junit.jupiter.api.Test;

/** The suite reports results for a client version: make sure that is the one on the classpath. */
class ClientVersionTest {
  @Test
  void clientOnTheClasspathIsTheOneAskedFor() {
    assertEquals(System.getProperty("kafka.client.version"), AppInfoParser.getVersion());
  }
}
