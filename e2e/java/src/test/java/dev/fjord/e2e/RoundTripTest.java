package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A producer with the client's default settings (idempotence on, acks=all) writes keyed
 * records; a consumer with assign() and seek() reads every one back exactly once, in order
 * per key, at the offset the producer was told.
 */
class RoundTripTest {
  static final int RECORDS = 20_000;
  static final int KEYS = 8;
  static final int PARTITIONS = 3;

  /** What the producer was told about one record. */
  record Sent(String key, String value, int partition, long offset, long timestamp) {}

  @ParameterizedTest(name = "compression.type={0}")
  @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
  void keyedRecordsComeBackOnceInOrderAtTheirOffsets(String compression) throws Exception {
    String topic = Broker.uniqueTopic("roundtrip-" + compression);
    try (Admin admin = Broker.admin()) {
      Broker.createTopic(admin, topic, PARTITIONS, Map.of());
    }

    List<Sent> sent = produce(topic, compression);
    assertEquals(RECORDS, sent.size());

    // The broker assigns offsets 0.. per partition with no gaps for a fresh topic.
    Map<Integer, List<Sent>> byPartition = new HashMap<>();
    for (Sent s : sent) byPartition.computeIfAbsent(s.partition, p -> new ArrayList<>()).add(s);
    for (var e : byPartition.entrySet()) {
      List<Sent> list = new ArrayList<>(e.getValue());
      list.sort((a, b) -> Long.compare(a.offset, b.offset));
      for (int i = 0; i < list.size(); i++) {
        assertEquals(i, list.get(i).offset, "partition " + e.getKey() + " offsets are dense from 0");
      }
    }
    // 8 keys over 3 partitions: the default partitioner must have used more than one.
    assertTrue(byPartition.size() > 1, "records landed in partitions " + byPartition.keySet());

    Map<String, Sent> expected = new HashMap<>();
    for (Sent s : sent) expected.put(s.value, s);

    try (KafkaConsumer<String, String> consumer = consumer()) {
      List<TopicPartition> tps = new ArrayList<>();
      for (int p = 0; p < PARTITIONS; p++) tps.add(new TopicPartition(topic, p));
      consumer.assign(tps);
      consumer.seekToBeginning(tps);
      List<ConsumerRecord<String, String>> got = consumeExactly(consumer, RECORDS);
      checkAgainstSent(got, expected);

      // Per key, values (their sequence numbers) arrive in the order they were sent.
      Map<String, Integer> lastSeq = new HashMap<>();
      for (var r : got) {
        int seq = Integer.parseInt(r.value().substring(r.value().indexOf('-') + 1));
        Integer prev = lastSeq.put(r.key(), seq);
        if (prev != null && prev >= seq) {
          fail("key " + r.key() + ": sequence " + seq + " read after " + prev);
        }
      }
      assertEquals(KEYS, lastSeq.size());

      // seek() into the middle of a partition, most likely the middle of a batch: the
      // first record read must be exactly the one at that offset, and the rest follow.
      int partition = byPartition.keySet().iterator().next();
      List<Sent> inPartition = new ArrayList<>(byPartition.get(partition));
      inPartition.sort((a, b) -> Long.compare(a.offset, b.offset));
      int from = inPartition.size() / 2 + 1;
      TopicPartition tp = new TopicPartition(topic, partition);
      consumer.assign(List.of(tp));
      consumer.seek(tp, inPartition.get(from).offset);
      List<ConsumerRecord<String, String>> tail = consumeExactly(consumer, inPartition.size() - from);
      for (int i = 0; i < tail.size(); i++) {
        Sent want = inPartition.get(from + i);
        assertEquals(want.offset, tail.get(i).offset(), "record " + i + " after seek");
        assertEquals(want.value, tail.get(i).value(), "record " + i + " after seek");
      }
      assertEquals(inPartition.get(inPartition.size() - 1).offset + 1, consumer.position(tp));
    }
    // Only on success: a failed run leaves its topic behind to look at.
    try (Admin admin = Broker.admin()) {
      admin.deleteTopics(List.of(topic)).all().get(Broker.DEADLINE.toSeconds(), TimeUnit.SECONDS);
    }
  }

  private List<Sent> produce(String topic, String compression) throws Exception {
    Properties p = Broker.common();
    // Only what a record needs plus the codec under test; idempotence and acks stay at the
    // client's defaults (enable.idempotence=true, acks=all since 3.0).
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
    List<Future<RecordMetadata>> futures = new ArrayList<>(RECORDS);
    List<ProducerRecord<String, String>> records = new ArrayList<>(RECORDS);
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
      for (int i = 0; i < RECORDS; i++) {
        String key = "k" + (i % KEYS);
        var r = new ProducerRecord<>(topic, key, key + "-" + i);
        r.headers().add("seq", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
        records.add(r);
        futures.add(producer.send(r));
      }
      producer.flush();
      List<Sent> sent = new ArrayList<>(RECORDS);
      for (int i = 0; i < RECORDS; i++) {
        RecordMetadata md = futures.get(i).get(Broker.DEADLINE.toSeconds(), TimeUnit.SECONDS);
        assertTrue(md.hasOffset(), "record " + i + " acknowledged with an offset");
        var r = records.get(i);
        sent.add(new Sent(r.key(), r.value(), md.partition(), md.offset(), md.timestamp()));
      }
      return sent;
    }
  }

  private static KafkaConsumer<String, String> consumer() {
    Properties p = Broker.common();
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    // No group: positions come only from seek(), so a wrong fetch cannot be hidden by a reset.
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
    return new KafkaConsumer<>(p);
  }

  /** Polls until n records have arrived (failing at the deadline), then checks no more come. */
  static List<ConsumerRecord<String, String>> consumeExactly(
      KafkaConsumer<String, String> consumer, int n) {
    List<ConsumerRecord<String, String>> got = new ArrayList<>(n);
    long deadline = System.nanoTime() + Broker.DEADLINE.toNanos();
    while (got.size() < n) {
      if (System.nanoTime() > deadline) {
        fail("read " + got.size() + " of " + n + " records within " + Broker.DEADLINE);
      }
      for (var r : consumer.poll(Duration.ofMillis(500))) got.add(r);
    }
    // Every partition is at its end now, so one more fetch round must bring nothing new.
    var extra = consumer.poll(Duration.ofMillis(500));
    assertEquals(0, extra.count(), "records beyond the " + n + " produced");
    assertEquals(n, got.size(), "records read");
    return got;
  }

  private static void checkAgainstSent(
      List<ConsumerRecord<String, String>> got, Map<String, Sent> expected) {
    Map<String, Integer> seen = new HashMap<>();
    for (var r : got) {
      Sent s = expected.get(r.value());
      if (s == null) fail("read a record that was never sent: " + r);
      if (seen.merge(r.value(), 1, Integer::sum) > 1) fail("read twice: " + r.value());
      assertEquals(s.key, r.key(), "key of " + r.value());
      assertEquals(s.partition, r.partition(), "partition of " + r.value());
      assertEquals(s.offset, r.offset(), "offset of " + r.value());
      assertEquals(s.timestamp, r.timestamp(), "timestamp of " + r.value());
      Header h = r.headers().lastHeader("seq");
      String seq = r.value().substring(r.value().indexOf('-') + 1);
      assertArrayEquals(seq.getBytes(StandardCharsets.UTF_8), h == null ? null : h.value(),
          "header of " + r.value());
    }
    assertEquals(expected.size(), seen.size(), "distinct records read");
  }
}
