package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;

/** The broker under test, as a client sees it: a bootstrap address and nothing else. */
final class Broker {
  static final Duration DEADLINE = Duration.ofSeconds(60);

  private Broker() {}

  /** From -Dfjord.bootstrap or FJORD_BOOTSTRAP; no default, so a run never tests the wrong broker. */
  static String bootstrap() {
    String b = System.getProperty("fjord.bootstrap");
    if (b == null || b.isBlank()) b = System.getenv("FJORD_BOOTSTRAP");
    if (b == null || b.isBlank()) {
      fail("set FJORD_BOOTSTRAP (or -Dfjord.bootstrap) to the broker's host:port");
    }
    return b;
  }

  /** Topic names are unique per run, so the suite can run again against the same broker. */
  static String uniqueTopic(String what) {
    String version = System.getProperty("kafka.client.version", "unknown").replace('.', '_');
    return "e2e-java" + version + "-" + what + "-" + UUID.randomUUID().toString().substring(0, 8);
  }

  static Properties common() {
    Properties p = new Properties();
    p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    p.put(CommonClientConfigs.CLIENT_ID_CONFIG, "fjord-e2e-java");
    return p;
  }

  static Admin admin() {
    return Admin.create(common());
  }

  /**
   * Replication factor of the topics the suites create: FJORD_REPLICATION_FACTOR, default 1
   * (one broker); 3 when the suites run against a 3-broker cluster.
   */
  static short replicationFactor() {
    String rf = System.getenv("FJORD_REPLICATION_FACTOR");
    return rf == null || rf.isBlank() ? 1 : Short.parseShort(rf.trim());
  }

  /** Creates a topic explicitly (no test relies on auto-creation) and waits for it. */
  static void createTopic(Admin admin, String name, int partitions, Map<String, String> configs)
      throws Exception {
    NewTopic t = new NewTopic(name, partitions, replicationFactor()).configs(configs);
    admin.createTopics(java.util.List.of(t)).all().get(DEADLINE.toSeconds(), TimeUnit.SECONDS);
    waitUntil("topic " + name + " has " + partitions + " partitions with leaders", () -> {
      try {
        var d = admin.describeTopics(java.util.List.of(name)).allTopicNames().get().get(name);
        return d.partitions().size() == partitions
            && d.partitions().stream().allMatch(p -> p.leader() != null && !p.leader().isEmpty());
      } catch (Exception e) {
        return false;
      }
    });
  }

  /** Polls a condition until it holds, failing the test at the deadline. */
  static void waitUntil(String what, BooleanSupplier condition) {
    long deadline = System.nanoTime() + DEADLINE.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) fail("not true within " + DEADLINE + ": " + what);
      try {
        Thread.sleep(100); // poll interval, not a synchronisation
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        fail("interrupted waiting for: " + what);
      }
    }
  }
}
