package dev.fjord.e2e.streams;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.fjord.e2e.eos.KillableCluster;
import dev.fjord.e2e.eos.NumberedRun;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A Kafka Streams application with processing.guarantee=exactly_once_v2 on the test's
 * own 3-broker cluster, one broker killed with SIGKILL and started again mid-run
 * (NumberedRun). The topology re-keys each numbered input by its group (number mod
 * GROUPS), which goes through a repartition topic, counts per group in a persistent
 * state store (backed by a changelog topic), and writes "number:count" to the output.
 *
 * Three inputs fail once on purpose after their output is sent, so their transactions
 * abort and their stream threads are replaced, restoring the store from the changelog.
 * Exactly-once shows twice in the read_committed output: every input number once, and
 * each group's counts exactly 1..n with none skipped or repeated, so the state store
 * moved in step with the output through the aborts and the failover.
 */
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class ExactlyOnceStreamsTest {
  static final int RECORDS = 3000;
  static final int PARTITIONS = 4;
  static final int GROUPS = 7;
  static final int PORT = 17200;
  static final String STORE = "counts";

  /** Inputs whose number is this modulo 1000 fail once, after their output is sent. */
  static final int DOOMED = 700;
  /** The inputs that failed: one JVM runs the test and the application. */
  static final Set<Integer> FAILED_ONCE = ConcurrentHashMap.newKeySet();

  /**
   * Counts the records of each key and appends the count to the value. A doomed input
   * throws once after its count is stored and its output sent: the stream thread dies
   * (and is replaced), its transaction aborts, and the input is processed again from a
   * store restored without that count, so the output still has each count once.
   */
  static final class Count implements FixedKeyProcessor<String, String, String> {
    private FixedKeyProcessorContext<String, String> context;
    private KeyValueStore<String, Long> counts;

    @Override
    public void init(FixedKeyProcessorContext<String, String> context) {
      this.context = context;
      this.counts = context.getStateStore(STORE);
    }

    @Override
    public void process(FixedKeyRecord<String, String> r) {
      Long before = counts.get(r.key());
      long count = before == null ? 1 : before + 1;
      counts.put(r.key(), count);
      context.forward(r.withValue(r.value() + ":" + count));
      int i = Integer.parseInt(r.value());
      if (i % 1000 == DOOMED && FAILED_ONCE.add(i)) {
        throw new IllegalStateException("input " + i + " fails once on purpose");
      }
    }
  }

  static Topology topology(String input, String output) {
    var b = new StreamsBuilder();
    b.addStateStore(Stores.keyValueStoreBuilder(
        Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.Long()));
    b.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
        .selectKey((k, v) -> "g" + (Integer.parseInt(v) % GROUPS))
        .repartition(Repartitioned.with(Serdes.String(), Serdes.String())
            .withName("by-group").withNumberOfPartitions(PARTITIONS))
        .processValues(Count::new, STORE)
        .to(output, Produced.with(Serdes.String(), Serdes.String()));
    return b.build();
  }

  @Test
  void everyInputOnceAndEveryCountOnceThroughABrokerKill() throws Exception {
    String suffix = UUID.randomUUID().toString().substring(0, 8);
    String input = "eos-streams-in-" + suffix;
    String output = "eos-streams-out-" + suffix;
    String app = "eos-streams-" + suffix;
    try (var cluster = KillableCluster.start("streams-eos-cluster", PORT)) {
      cluster.createTopics(PARTITIONS, input, output);
      Properties p = new Properties();
      p.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
      p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, cluster.bootstrap());
      p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
      p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 3);
      p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 2);
      p.put(StreamsConfig.STATE_DIR_CONFIG,
          Path.of(System.getProperty("basedir", "."), "target", "streams-state").toAbsolutePath().toString());
      p.put("group.protocol", "classic");
      // What a thread died of (it is replaced, as a production application would do):
      // printed, so a failover's errors are on record even when the output is right.
      var deaths = new ConcurrentLinkedQueue<Throwable>();
      try (var streams = new KafkaStreams(topology(input, output), p)) {
        streams.setUncaughtExceptionHandler(e -> {
          deaths.add(e);
          return StreamThreadExceptionResponse.REPLACE_THREAD;
        });
        streams.start();
        NumberedRun.run(cluster, input, output, RECORDS, () -> cluster.victim(app, output));
        streams.close(Duration.ofSeconds(60));
        streams.cleanUp();
      }
      for (Throwable e : deaths) System.err.println("eos: a stream thread died and was replaced: " + e);
      assertEquals(Set.of(DOOMED, 1000 + DOOMED, 2000 + DOOMED), FAILED_ONCE, "inputs made to fail once");

      List<String> committed = NumberedRun.readAll(cluster.bootstrap(), output, IsolationLevel.READ_COMMITTED, RECORDS);
      NumberedRun.assertEachNumberOnce("read_committed output", committed, RECORDS);
      Map<Integer, List<Long>> countsByGroup = new TreeMap<>();
      for (String v : committed) {
        int colon = v.indexOf(':');
        countsByGroup.computeIfAbsent(NumberedRun.numberOf(v) % GROUPS, g -> new ArrayList<>())
            .add(Long.parseLong(v.substring(colon + 1)));
      }
      for (int g = 0; g < GROUPS; g++) {
        long n = (RECORDS - g + GROUPS - 1) / GROUPS;
        List<Long> counts = countsByGroup.getOrDefault(g, List.of()).stream().sorted().toList();
        List<Long> expected = java.util.stream.LongStream.rangeClosed(1, n).boxed().toList();
        assertEquals(expected, counts, "counts of group g" + g + " in the read_committed output");
      }
      // What was aborted (not asserted: a doomed input's output may still be in the
      // producer's buffer when its transaction aborts).
      int uncommitted = NumberedRun.readAll(cluster.bootstrap(), output, IsolationLevel.READ_UNCOMMITTED, RECORDS).size();
      System.err.printf("eos: %d inputs once in the read_committed output, counts of %d groups consecutive;"
          + " read_uncommitted reads %d records, %d of them aborted%n",
          RECORDS, GROUPS, uncommitted, uncommitted - committed.size());
    }
  }
}
