package dev.fjord.e2e.eos;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The run both exactly-once tests share: input records numbered 0..N-1 (value "i") go in
 * by thirds while an application turns each into one output record whose value starts
 * with "i" ("i" alone or "i:something"); one broker is killed with SIGKILL as the second
 * third goes in and started again as the last does, once the second is through, so the
 * application keeps working with a broker gone and while it comes back. Then the output is read back to check
 * that every input is there exactly once.
 */
public final class NumberedRun {
  /** Bound on each phase's progress (a failover included) and on reading the output back. */
  public static final Duration PHASE_TIMEOUT = Duration.ofSeconds(120);
  /** Keys of the input records; the applications key their work by them. */
  public static final int KEYS = 32;

  private NumberedRun() {}

  /** Which broker to kill, chosen once the application is mid-run. */
  public interface Victim {
    int choose() throws Exception;
  }

  /**
   * Feeds records 0..n-1 into INPUT by thirds, killing and restarting one broker between
   * them, and returns once OUTPUT's committed records cover every input number.
   */
  public static void run(KillableCluster cluster, String input, String output, int n, Victim victim)
      throws Exception {
    try (var producer = inputProducer(cluster.bootstrap());
        var watcher = new Watcher(cluster.bootstrap(), output)) {
      long start = System.nanoTime();
      awaitAcks(send(producer, input, 0, n / 3));
      watcher.awaitAtLeast(n / 6, "before the kill");
      int node = victim.choose();
      progress(start, n / 6 + " committed; killing broker " + node);
      // The next third goes out as the broker dies, so transactions are open at the kill
      // even when the application has caught up with the first.
      List<Future<RecordMetadata>> acks = send(producer, input, n / 3, 2 * n / 3);
      cluster.kill(node);
      awaitAcks(acks);
      watcher.awaitAtLeast(n / 2, "with broker " + node + " down");
      progress(start, n / 2 + " committed with broker " + node + " down; restarting it");
      acks = send(producer, input, 2 * n / 3, n);
      cluster.restart(node);
      awaitAcks(acks);
      watcher.awaitAtLeast(n, "after broker " + node + " came back");
      progress(start, n + " committed");
    }
  }

  private static void progress(long start, String what) {
    System.err.printf("eos: %.1fs: %s%n", (System.nanoTime() - start) / 1e9, what);
  }

  /** An idempotent producer (acks=all): each input record is in the log once. */
  static KafkaProducer<String, String> inputProducer(String bootstrap) {
    return new KafkaProducer<>(Map.of(
        ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
        ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
        ProducerConfig.ACKS_CONFIG, "all",
        ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class,
        ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class));
  }

  /** Sends records from..to-1 without waiting: their acknowledgements. */
  static List<Future<RecordMetadata>> send(KafkaProducer<String, String> producer, String topic, int from, int to) {
    List<Future<RecordMetadata>> acks = new ArrayList<>();
    for (int i = from; i < to; i++) {
      acks.add(producer.send(new ProducerRecord<>(topic, "k" + (i % KEYS), Integer.toString(i))));
    }
    return acks;
  }

  static void awaitAcks(List<Future<RecordMetadata>> acks) throws Exception {
    long deadline = System.nanoTime() + PHASE_TIMEOUT.toNanos();
    for (var ack : acks) ack.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
  }

  /** The input number an output value carries: what comes before the first ':'. */
  public static int numberOf(String value) {
    int colon = value.indexOf(':');
    return Integer.parseInt(colon < 0 ? value : value.substring(0, colon));
  }

  /**
   * Every value of TOPIC read from the beginning with this isolation level, up to the end
   * offsets (the last stable offset under read_committed), once at least minNumbers
   * distinct input numbers were seen or PHASE_TIMEOUT passed.
   */
  public static List<String> readAll(String bootstrap, String topic, IsolationLevel isolation, int minNumbers) {
    List<String> values = new ArrayList<>();
    Set<Integer> numbers = new java.util.HashSet<>();
    try (var consumer = consumer(bootstrap, isolation)) {
      List<TopicPartition> parts = partitions(consumer, topic);
      consumer.assign(parts);
      consumer.seekToBeginning(parts);
      long deadline = System.nanoTime() + PHASE_TIMEOUT.toNanos();
      while (System.nanoTime() < deadline) {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
          values.add(r.value());
          numbers.add(numberOf(r.value()));
        }
        if (numbers.size() < minNumbers) continue;
        Map<TopicPartition, Long> ends = consumer.endOffsets(parts);
        if (parts.stream().allMatch(tp -> consumer.position(tp) >= ends.get(tp))) break;
      }
    }
    return values;
  }

  /**
   * Fails unless the values carry each number 0..n-1 exactly once and nothing else; the
   * message lists the first of the missing, repeated and foreign numbers.
   */
  public static void assertEachNumberOnce(String what, Collection<String> values, int n) {
    Map<Integer, Integer> counts = new TreeMap<>();
    List<String> foreign = new ArrayList<>();
    for (String v : values) {
      try {
        int i = numberOf(v);
        if (i < 0 || i >= n) foreign.add(v);
        else counts.merge(i, 1, Integer::sum);
      } catch (NumberFormatException e) {
        foreign.add(v);
      }
    }
    List<Integer> missing = new ArrayList<>();
    List<String> repeated = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int c = counts.getOrDefault(i, 0);
      if (c == 0) missing.add(i);
      else if (c > 1) repeated.add(i + "x" + c);
    }
    if (!missing.isEmpty() || !repeated.isEmpty() || !foreign.isEmpty()) {
      throw new AssertionError(String.format(
          "%s: %d values for %d inputs: %d missing %s, %d repeated %s, %d foreign %s", what,
          values.size(), n, missing.size(), first(missing), repeated.size(), first(repeated),
          foreign.size(), first(foreign)));
    }
  }

  static <T> List<T> first(List<T> items) {
    return items.subList(0, Math.min(20, items.size()));
  }

  /** Polls a condition until it holds; fails after PHASE_TIMEOUT with the state it reached. */
  public static void waitUntil(String what, BooleanSupplier condition, Supplier<String> state)
      throws InterruptedException {
    long deadline = System.nanoTime() + PHASE_TIMEOUT.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("not true within " + PHASE_TIMEOUT + ": " + what + " (" + state.get() + ")");
      }
      Thread.sleep(100); // poll interval of a condition wait, not a synchronisation
    }
  }

  static KafkaConsumer<String, String> consumer(String bootstrap, IsolationLevel isolation) {
    return new KafkaConsumer<>(Map.of(
        ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
        ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation.toString(),
        ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
        ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class,
        ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class));
  }

  static List<TopicPartition> partitions(KafkaConsumer<?, ?> consumer, String topic) {
    return consumer.partitionsFor(topic, PHASE_TIMEOUT).stream()
        .map(p -> new TopicPartition(topic, p.partition())).toList();
  }

  /**
   * Follows OUTPUT with a read_committed consumer on its own thread (a consumer is not
   * thread-safe) and keeps the distinct input numbers it has seen: the progress the phases
   * of the run wait on.
   */
  static final class Watcher implements AutoCloseable {
    private final Set<Integer> numbers = ConcurrentHashMap.newKeySet();
    private final KafkaConsumer<String, String> consumer;
    private final Thread thread;
    private volatile Exception failure;

    Watcher(String bootstrap, String topic) {
      consumer = consumer(bootstrap, IsolationLevel.READ_COMMITTED);
      List<TopicPartition> parts = partitions(consumer, topic);
      consumer.assign(parts);
      consumer.seekToBeginning(parts);
      thread = new Thread(this::follow, "eos-output-watcher");
      thread.start();
    }

    private void follow() {
      try {
        while (true) {
          for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
            numbers.add(numberOf(r.value()));
          }
        }
      } catch (WakeupException e) {
        // close() asked the thread to stop.
      } catch (Exception e) {
        failure = e;
      }
    }

    void awaitAtLeast(int n, String phase) throws InterruptedException {
      waitUntil(n + " input numbers in the committed output " + phase,
          () -> failure != null || numbers.size() >= n,
          () -> numbers.size() + " seen");
      if (failure != null) throw new AssertionError("the output watcher failed " + phase, failure);
    }

    @Override
    public void close() throws InterruptedException {
      consumer.wakeup();
      thread.join(PHASE_TIMEOUT.toMillis());
      consumer.close();
    }
  }
}
