package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.fjord.e2e.GroupMember.Received;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;

/** Producing known records and checking what a consumer group read back. */
final class Groups {
  private Groups() {}

  /** Where the producer was told a record landed. */
  record Sent(int partition, long offset) {}

  static String uniqueGroup(String what) {
    String version = System.getProperty("kafka.client.version", "unknown").replace('.', '_');
    return "e2e-java" + version + "-group-" + what + "-" + UUID.randomUUID().toString().substring(0, 8);
  }

  static List<TopicPartition> partitions(String topic, int count) {
    List<TopicPartition> tps = new ArrayList<>();
    for (int p = 0; p < count; p++) tps.add(new TopicPartition(topic, p));
    return tps;
  }

  /**
   * Sends perPartition records to each partition (explicit partition, so every partition
   * gets some) and returns value → where the broker put it. Values are unique per call
   * thanks to the prefix.
   */
  static Map<String, Sent> produce(String topic, int partitions, int perPartition, String prefix)
      throws Exception {
    var p = Broker.common();
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    Map<String, Future<RecordMetadata>> futures = new LinkedHashMap<>();
    try (var producer = new KafkaProducer<String, String>(p)) {
      for (int i = 0; i < perPartition; i++) {
        for (int part = 0; part < partitions; part++) {
          String value = prefix + "-p" + part + "-" + i;
          futures.put(value, producer.send(new ProducerRecord<>(topic, part, "k" + part, value)));
        }
      }
      producer.flush();
    }
    Map<String, Sent> sent = new LinkedHashMap<>();
    for (var e : futures.entrySet()) {
      RecordMetadata m = e.getValue().get(Broker.DEADLINE.toSeconds(), TimeUnit.SECONDS);
      sent.put(e.getKey(), new Sent(m.partition(), m.offset()));
    }
    return sent;
  }

  /** The offsets to commit after processing these records: one past the last per partition. */
  static Map<TopicPartition, OffsetAndMetadata> nextOffsets(ConsumerRecords<String, String> records) {
    Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
    for (ConsumerRecord<String, String> r : records) {
      next.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
    }
    return next;
  }

  /**
   * Waits until the members between them hold every partition of the topic, each partition
   * exactly once, and each member holds `each` partitions (or, with each = -1, at least one).
   */
  static void waitForBalance(String topic, int partitions, List<GroupMember> members, int each) {
    Broker.waitUntil(members.size() + " members share " + partitions + " partitions of " + topic, () -> {
      members.forEach(GroupMember::checkAlive);
      Set<TopicPartition> union = new HashSet<>();
      int total = 0;
      for (GroupMember m : members) {
        var a = m.assignment();
        if (each >= 0 ? a.size() != each : a.isEmpty()) return false;
        union.addAll(a);
        total += a.size();
      }
      return total == partitions && union.equals(new HashSet<>(partitions(topic, partitions)));
    });
  }

  /** Waits until every value in `values` has been read by someone. */
  static void waitForValues(Collection<Received> sink, Set<String> values, List<GroupMember> members) {
    Broker.waitUntil("all " + values.size() + " records read", () -> {
      members.forEach(GroupMember::checkAlive);
      Set<String> seen = new HashSet<>();
      for (Received r : sink) seen.add(r.value());
      return seen.containsAll(values);
    });
  }

  /** Every record read is one that was sent, read at the partition and offset it was written to. */
  static void assertGenuine(Map<String, Sent> sent, Collection<Received> got) {
    for (Received r : got) {
      Sent s = sent.get(r.value());
      assertNotNull(s, "read a record that was never sent: " + r);
      assertEquals(s, new Sent(r.partition(), r.offset()), "record " + r.value() + " read at another place");
    }
  }

  /** Every record sent was read exactly once (and nothing else was read). */
  static void assertExactlyOnce(Map<String, Sent> sent, Collection<Received> got) {
    assertGenuine(sent, got);
    Map<String, Integer> count = new HashMap<>();
    for (Received r : got) count.merge(r.value(), 1, Integer::sum);
    for (var e : count.entrySet()) assertEquals(1, e.getValue(), "times read: " + e.getKey());
    assertEquals(sent.keySet(), count.keySet(), "records read");
  }

  /** Every record sent was read at least once (and nothing else was read). */
  static void assertAtLeastOnce(Map<String, Sent> sent, Collection<Received> got) {
    assertGenuine(sent, got);
    Set<String> seen = new HashSet<>();
    for (Received r : got) seen.add(r.value());
    Set<String> missing = new HashSet<>(sent.keySet());
    missing.removeAll(seen);
    assertTrue(missing.isEmpty(), missing.size() + " records never read, e.g. " + missing.stream().limit(5).toList());
  }

  /** Each record was read by the member that held its partition. */
  static void assertReadByOwner(Collection<Received> got, Map<String, Set<TopicPartition>> owners, String topic) {
    for (Received r : got) {
      var owned = owners.get(r.member());
      assertNotNull(owned, "record read by unexpected member " + r.member());
      if (!owned.contains(new TopicPartition(topic, r.partition()))) {
        fail(r.member() + " read partition " + r.partition() + " it does not hold (" + owned + "): " + r);
      }
    }
  }

  static Map<TopicPartition, OffsetAndMetadata> committed(Admin admin, String group) throws Exception {
    return admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata()
        .get(Broker.DEADLINE.toSeconds(), TimeUnit.SECONDS);
  }

  /** Committed offset per partition, without metadata, leaving out partitions with none. */
  static Map<TopicPartition, Long> committedOffsets(Admin admin, String group) throws Exception {
    Map<TopicPartition, Long> out = new HashMap<>();
    committed(admin, group).forEach((tp, o) -> {
      if (o != null) out.put(tp, o.offset());
    });
    return out;
  }

  /** Per partition, one past the highest offset the producer was told about. */
  static Map<TopicPartition, Long> ends(String topic, Map<String, Sent> sent) {
    Map<TopicPartition, Long> out = new HashMap<>();
    for (Sent s : sent.values()) out.merge(new TopicPartition(topic, s.partition()), s.offset() + 1, Math::max);
    return out;
  }
}
