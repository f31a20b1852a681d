package dev.fjord.e2e;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * One consumer of a group, subscribed to one topic and polling on its own thread (a
 * KafkaConsumer belongs to one thread). It appends what it reads to a sink shared by the
 * test and exposes what the group gave it, so a test can wait for an assignment and then
 * check who read what.
 */
final class GroupMember implements AutoCloseable {
  enum Commit { SYNC, ASYNC, AUTO }

  /** A record as a member saw it. */
  record Received(String member, int partition, long offset, String value) {}

  final String name;
  private final Thread thread;
  private final Collection<Received> sink;
  private volatile KafkaConsumer<String, String> consumer;
  private volatile Set<TopicPartition> assignment = Set.of();
  private volatile int generation = -1;
  private volatile boolean running = true;
  private volatile Throwable failure;
  /** Calls of onPartitionsRevoked with a non-empty set: each is a rebalance this member took part in. */
  final AtomicInteger revocations = new AtomicInteger();
  /** Per partition, the offset of the last commit the broker acknowledged to this member. */
  final Map<TopicPartition, Long> acknowledgedCommits = new ConcurrentHashMap<>();

  /** Group consumer settings shared by every group test; extra entries override them. */
  static Properties props(String group, String member, Map<String, Object> extra) {
    Properties p = Broker.common();
    p.put(ConsumerConfig.CLIENT_ID_CONFIG, "fjord-e2e-" + member);
    p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    // Fjord speaks the classic group protocol only. 4.x already defaults to it; say so
    // anyway (3.7+ know the property) so a change of default cannot switch protocols.
    p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    // Short enough that a member gone without leaving is noticed within the test's
    // deadline; the broker's minimum (group.min.session.timeout.ms) is 6000.
    p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
    p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
    p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "200");
    p.putAll(extra);
    return p;
  }

  GroupMember(String name, String topic, Properties props, Commit commit, Collection<Received> sink) {
    this.name = name;
    this.sink = sink;
    this.thread = new Thread(() -> run(topic, props, commit), "member-" + name);
    this.thread.setDaemon(true);
    this.thread.start();
  }

  static GroupMember start(String group, String name, String topic, Collection<Received> sink) {
    return new GroupMember(name, topic, props(group, name, Map.of()), Commit.SYNC, sink);
  }

  private void run(String topic, Properties props, Commit commit) {
    try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
      consumer = c;
      c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
          if (!partitions.isEmpty()) revocations.incrementAndGet();
          assignment = Set.of();
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
          assignment = Set.copyOf(c.assignment());
          generation = c.groupMetadata().generationId();
        }
      });
      while (running) {
        var records = c.poll(Duration.ofMillis(200));
        for (ConsumerRecord<String, String> r : records) {
          sink.add(new Received(name, r.partition(), r.offset(), r.value()));
        }
        if (records.isEmpty()) continue;
        switch (commit) {
          case SYNC -> {
            var offsets = Groups.nextOffsets(records);
            c.commitSync(offsets);
            offsets.forEach((tp, o) -> acknowledgedCommits.put(tp, o.offset()));
          }
          case ASYNC -> c.commitAsync((offsets, e) -> {
            if (e == null) offsets.forEach((tp, o) -> acknowledgedCommits.merge(tp, o.offset(), Math::max));
          });
          case AUTO -> {}
        }
      }
    } catch (WakeupException e) {
      // close() asked us to stop while polling.
    } catch (Throwable t) {
      failure = t;
    } finally {
      assignment = Set.of();
    }
  }

  Set<TopicPartition> assignment() {
    return assignment;
  }

  int generation() {
    return generation;
  }

  /** The consumer died on its own: fail the waiting test with its cause rather than a timeout. */
  void checkAlive() {
    if (failure != null) throw new AssertionError("member " + name + " failed", failure);
    if (!thread.isAlive() && running) throw new AssertionError("member " + name + " stopped");
  }

  /** Stops polling and closes the consumer (leaving the group unless it is a static member). */
  @Override
  public void close() throws InterruptedException {
    running = false;
    var c = consumer;
    if (c != null) c.wakeup();
    thread.join(TimeUnit.SECONDS.toMillis(60));
    if (thread.isAlive()) throw new AssertionError("member " + name + " did not close within 60 s");
    if (failure != null) throw new AssertionError("member " + name + " failed", failure);
  }
}
