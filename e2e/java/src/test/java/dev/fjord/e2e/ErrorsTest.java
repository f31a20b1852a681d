package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.Test;

/** The errors users notice, each as the exception type the client maps the error code to. */
class ErrorsTest {

  @Test
  void recordLargerThanTopicMaxMessageBytesIsRejected() throws Exception {
    String topic = Broker.uniqueTopic("too-large");
    try (Admin admin = Broker.admin()) {
      Broker.createTopic(admin, topic, 1, Map.of("max.message.bytes", "10000"));
    }
    Properties p = Broker.common();
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    byte[] big = new byte[20_000]; // under the client's max.request.size: only the broker can refuse it
    new Random(1).nextBytes(big);
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      var e = assertThrows(ExecutionException.class,
          () -> producer.send(new ProducerRecord<>(topic, big)).get(Broker.DEADLINE.toSeconds(), TimeUnit.SECONDS));
      assertInstanceOf(RecordTooLargeException.class, e.getCause(), e.toString());
      // The refusal is per batch: the same producer can still write a record that fits.
      var md = producer.send(new ProducerRecord<>(topic, new byte[100]))
          .get(Broker.DEADLINE.toSeconds(), TimeUnit.SECONDS);
      assertEquals(0, md.offset(), "the rejected record took no offset");
    }
    try (Admin admin = Broker.admin()) {
      admin.deleteTopics(List.of(topic)).all().get();
    }
  }

  @Test
  void creatingAnExistingTopicFails() throws Exception {
    String topic = Broker.uniqueTopic("exists");
    try (Admin admin = Broker.admin()) {
      Broker.createTopic(admin, topic, 1, Map.of());
      var e = assertThrows(ExecutionException.class,
          () -> admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get());
      assertInstanceOf(TopicExistsException.class, e.getCause(), e.toString());
      admin.deleteTopics(List.of(topic)).all().get();
    }
  }

  @Test
  void invalidPartitionCountsAreRejected() throws Exception {
    String topic = Broker.uniqueTopic("partitions");
    try (Admin admin = Broker.admin()) {
      var zero = assertThrows(ExecutionException.class,
          () -> admin.createTopics(List.of(new NewTopic(topic, 0, (short) 1))).all().get());
      assertInstanceOf(InvalidPartitionsException.class, zero.getCause(), zero.toString());

      Broker.createTopic(admin, topic, 3, Map.of());
      for (int count : new int[] {3, 2}) {
        var e = assertThrows(ExecutionException.class,
            () -> admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(count))).all().get());
        assertInstanceOf(InvalidPartitionsException.class, e.getCause(), "increaseTo(" + count + "): " + e);
      }
      admin.deleteTopics(List.of(topic)).all().get();
    }
  }

  @Test
  void replicationFactorLargerThanTheClusterIsRejected() throws Exception {
    String topic = Broker.uniqueTopic("rf");
    try (Admin admin = Broker.admin()) {
      var e = assertThrows(ExecutionException.class,
          () -> admin.createTopics(List.of(new NewTopic(topic, 1, (short) 100))).all().get());
      assertInstanceOf(InvalidReplicationFactorException.class, e.getCause(), e.toString());
    }
  }

  @Test
  void describingAnUnknownTopicFails() throws Exception {
    try (Admin admin = Broker.admin()) {
      var e = assertThrows(ExecutionException.class,
          () -> admin.describeTopics(List.of(Broker.uniqueTopic("never-created"))).allTopicNames().get());
      assertInstanceOf(UnknownTopicOrPartitionException.class, e.getCause(), e.toString());
    }
  }
}
