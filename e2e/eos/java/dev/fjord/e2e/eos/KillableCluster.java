package dev.fjord.e2e.eos;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.common.Node;

/**
 * A 3-broker cluster this test owns, driven through e2e/eos/cluster.sh: Fjord from
 * FJORD_BIN, or Apache Kafka when EOS_BROKER=kafka. Its files stay under target/ for the
 * post-mortem (each broker's log is DIR/node-i/broker.log, or server.log for Kafka).
 */
public final class KillableCluster implements AutoCloseable {
  /** Bound on one script call: a start (Kafka's JVMs take a while), a kill or a restart. */
  private static final Duration SCRIPT_TIMEOUT = Duration.ofSeconds(240);
  private static final int START_TRIES = 3;
  private static final int PORT_STEP = 26;

  private final Path script;
  private final Path dir;
  private final String bootstrap;

  private KillableCluster(Path script, Path dir, String bootstrap) {
    this.script = script;
    this.dir = dir;
    this.bootstrap = bootstrap;
  }

  /**
   * Starts a fresh cluster with Kafka ports port..port+2 (26 ports from port in all), its
   * files in target/NAME. The callers' ports lie below the kernel's ephemeral range; a
   * start that still finds a port taken (a process left over from an earlier run) tries
   * again PORT_STEP higher, up to START_TRIES times.
   */
  public static KillableCluster start(String name, int port) throws Exception {
    Path base = Path.of(System.getProperty("basedir", ".")).toAbsolutePath();
    Path script = base.resolve("../eos/cluster.sh").normalize();
    Path dir = base.resolve("target").resolve(name);
    for (int attempt = 1; ; attempt++) {
      deleteTree(dir);
      Files.createDirectories(dir);
      try {
        return start(script, dir, port);
      } catch (IllegalStateException e) {
        if (attempt == START_TRIES || !e.getMessage().contains("in use")) throw e;
        System.err.println("eos: a port of " + port + ".." + (port + PORT_STEP - 1) + " is taken; trying higher");
        port += PORT_STEP;
      }
    }
  }

  private static KillableCluster start(Path script, Path dir, int port) throws Exception {
    String out = run(script, "start", dir.toString(), Integer.toString(port));
    String bootstrap = out.lines().filter(l -> l.startsWith("bootstrap: "))
        .map(l -> l.substring("bootstrap: ".length())).findFirst()
        .orElseThrow(() -> new IllegalStateException("cluster.sh start printed no bootstrap: " + out));
    System.err.printf("eos: %s cluster in %s, bootstrap %s%n", broker(), dir, bootstrap);
    return new KillableCluster(script, dir, bootstrap);
  }

  /** "fjord" or "kafka": which broker the cluster runs. */
  public static String broker() {
    String b = System.getenv("EOS_BROKER");
    return b == null || b.isBlank() ? "fjord" : b;
  }

  public String bootstrap() {
    return bootstrap;
  }

  public Admin admin() {
    return Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap));
  }

  /** Creates each topic with this many partitions, replicated on all three brokers. */
  public void createTopics(int partitions, String... names) throws Exception {
    List<NewTopic> topics = new ArrayList<>();
    for (String n : names) topics.add(new NewTopic(n, partitions, (short) 3));
    try (Admin admin = admin()) {
      admin.createTopics(topics).all().get(60, TimeUnit.SECONDS);
    }
  }

  /**
   * The broker to kill: the transaction coordinator of one of the application's open
   * transactions (ListTransactions, then DescribeTransactions), so the kill exercises
   * coordinator failover; when the cluster cannot say, the leader of the output topic's
   * partition 0, a data partition written inside the transactions.
   */
  public int victim(String transactionalIdPrefix, String outputTopic) throws Exception {
    try (Admin admin = admin()) {
      try {
        List<String> ids = admin.listTransactions().all().get(30, TimeUnit.SECONDS).stream()
            .map(TransactionListing::transactionalId)
            .filter(id -> id.startsWith(transactionalIdPrefix)).sorted().toList();
        if (!ids.isEmpty()) {
          int coordinator = admin.describeTransactions(List.of(ids.get(0))).all()
              .get(30, TimeUnit.SECONDS).get(ids.get(0)).coordinatorId();
          System.err.printf("eos: victim is broker %d, coordinator of %s%n", coordinator, ids.get(0));
          return coordinator;
        }
        System.err.println("eos: no transaction of " + transactionalIdPrefix + " listed");
      } catch (Exception e) {
        System.err.println("eos: cannot find a transaction coordinator (" + e + ")");
      }
      Node leader = admin.describeTopics(List.of(outputTopic)).allTopicNames()
          .get(30, TimeUnit.SECONDS).get(outputTopic).partitions().get(0).leader();
      System.err.printf("eos: victim is broker %d, leader of %s-0%n", leader.id(), outputTopic);
      return leader.id();
    }
  }

  /** SIGKILL to broker NODE; returns once the process is gone. */
  public void kill(int node) throws Exception {
    System.err.println("eos: " + run(script, "kill", dir.toString(), Integer.toString(node)).strip());
  }

  /** Starts broker NODE again on its data; returns once it is ready. */
  public void restart(int node) throws Exception {
    System.err.println("eos: " + run(script, "restart", dir.toString(), Integer.toString(node)).strip());
  }

  @Override
  public void close() throws Exception {
    run(script, "stop", dir.toString());
  }

  private static String run(Path script, String... args) throws Exception {
    List<String> cmd = new ArrayList<>();
    cmd.add(script.toString());
    cmd.addAll(List.of(args));
    Path log = Files.createTempFile("eos-cluster-", ".log");
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
      if (!p.waitFor(SCRIPT_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new IllegalStateException(cmd + " did not finish within " + SCRIPT_TIMEOUT + ": "
            + Files.readString(log, StandardCharsets.UTF_8));
      }
      String out = Files.readString(log, StandardCharsets.UTF_8);
      if (p.exitValue() != 0) throw new IllegalStateException(cmd + " exited " + p.exitValue() + ": " + out);
      return out;
    } finally {
      Files.deleteIfExists(log);
    }
  }

  private static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) return;
    try (Stream<Path> paths = Files.walk(dir)) {
      for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) Files.delete(p);
    }
  }
}
