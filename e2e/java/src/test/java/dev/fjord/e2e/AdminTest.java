package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;

/** The Admin calls that operators, frameworks and tools make. */
class AdminTest {

  @Test
  void createDescribeAlterGrowAndDeleteATopic() throws Exception {
    String topic = Broker.uniqueTopic("admin");
    try (Admin admin = Broker.admin()) {
      // validateOnly checks the request and creates nothing.
      NewTopic newTopic = new NewTopic(topic, 3, Broker.replicationFactor())
          .configs(Map.of("retention.ms", "123456789", "segment.bytes", "16777216"));
      admin.createTopics(List.of(newTopic), new CreateTopicsOptions().validateOnly(true)).all().get();
      assertFalse(admin.listTopics().names().get().contains(topic), "validateOnly created the topic");
      var missing = assertThrows(ExecutionException.class,
          () -> admin.describeTopics(List.of(topic)).allTopicNames().get());
      assertInstanceOf(UnknownTopicOrPartitionException.class, missing.getCause());

      // createTopics, with configs; the result reports what was created.
      var created = admin.createTopics(List.of(newTopic));
      created.all().get();
      assertEquals(3, created.numPartitions(topic).get());
      assertEquals(Broker.replicationFactor(), created.replicationFactor(topic).get().shortValue());
      Broker.waitUntil("topic listed", () -> names(admin).contains(topic));

      // describeTopics: partitions 0..2, each with a leader among the cluster's nodes, a topic id.
      TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
      assertEquals(topic, d.name());
      assertFalse(d.isInternal());
      assertNotNull(d.topicId());
      assertNotEquals(Uuid.ZERO_UUID, d.topicId(), "topic id");
      assertEquals(3, d.partitions().size());
      List<Integer> nodeIds = new ArrayList<>();
      for (Node n : admin.describeCluster().nodes().get()) nodeIds.add(n.id());
      for (int p = 0; p < 3; p++) {
        var info = d.partitions().get(p);
        assertEquals(p, info.partition());
        assertNotNull(info.leader(), "leader of partition " + p);
        assertTrue(nodeIds.contains(info.leader().id()), "leader of " + p + " is a cluster node");
        assertEquals(Broker.replicationFactor(), info.replicas().size());
        assertEquals(info.leader().id(), info.replicas().get(0).id(), "the preferred replica leads");
        assertEquals(Broker.replicationFactor(), info.isr().size());
      }

      // describeConfigs: what was set, and defaults marked as such.
      ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      Config cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
      ConfigEntry retention = cfg.get("retention.ms");
      assertEquals("123456789", retention.value());
      assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, retention.source());
      assertFalse(retention.isDefault());
      assertEquals("16777216", cfg.get("segment.bytes").value());
      ConfigEntry cleanup = cfg.get("cleanup.policy");
      assertNotNull(cleanup, "cleanup.policy is described");
      assertEquals("delete", cleanup.value());
      assertNotEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, cleanup.source());
      assertNotNull(cfg.get("max.message.bytes"), "max.message.bytes is described");
      assertTrue(Integer.parseInt(cfg.get("max.message.bytes").value()) > 0);

      // incrementalAlterConfigs: SET one, DELETE another (back to its default).
      admin.incrementalAlterConfigs(Map.of(res, List.of(
          new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
          new AlterConfigOp(new ConfigEntry("segment.bytes", ""), AlterConfigOp.OpType.DELETE),
          new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SET))))
          .all().get();
      Broker.waitUntil("altered configs described", () -> {
        Config c = describe(admin, res);
        return "7200000".equals(c.get("retention.ms").value())
            && "compact".equals(c.get("cleanup.policy").value())
            && c.get("segment.bytes").source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG;
      });
      Config after = describe(admin, res);
      assertNotEquals("16777216", after.get("segment.bytes").value(), "deleted config back to default");

      // createPartitions: 3 -> 5.
      admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get();
      Broker.waitUntil("topic has 5 partitions", () -> partitions(admin, topic) == 5);

      // deleteTopics: then it is gone.
      admin.deleteTopics(List.of(topic)).all().get();
      Broker.waitUntil("topic no longer listed", () -> !names(admin).contains(topic));
      Broker.waitUntil("describe says unknown topic", () -> {
        try {
          admin.describeTopics(List.of(topic)).allTopicNames().get();
          return false;
        } catch (ExecutionException e) {
          return e.getCause() instanceof UnknownTopicOrPartitionException;
        } catch (InterruptedException e) {
          throw new RuntimeException(e);
        }
      });
    }
  }

  @Test
  void describeCluster() throws Exception {
    try (Admin admin = Broker.admin()) {
      DescribeClusterResult c = admin.describeCluster();
      String clusterId = c.clusterId().get();
      assertNotNull(clusterId);
      assertFalse(clusterId.isBlank(), "cluster id");
      var nodes = c.nodes().get();
      assertFalse(nodes.isEmpty(), "nodes");
      for (Node n : nodes) {
        assertTrue(n.id() >= 0, "node id " + n.id());
        assertFalse(n.host().isBlank(), "node host");
        assertTrue(n.port() > 0, "node port");
      }
      // Whatever a broker reports as controller must be one of the nodes it lists.
      Node controller = c.controller().get();
      if (controller != null && !controller.isEmpty()) {
        assertTrue(nodes.stream().anyMatch(n -> n.id() == controller.id()), "controller " + controller);
      }
    }
  }

  @Test
  void listOffsetsEarliestLatestAndForTimestamp() throws Exception {
    String topic = Broker.uniqueTopic("offsets");
    long t0 = System.currentTimeMillis() - 3_600_000L;
    try (Admin admin = Broker.admin()) {
      Broker.createTopic(admin, topic, 1, Map.of("message.timestamp.type", "CreateTime"));
      Properties p = Broker.common();
      p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
      p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
      try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
        List<Future<RecordMetadata>> fs = new ArrayList<>();
        // Records 1 s apart, sent one at a time so each lands in its own batch.
        for (int i = 0; i < 10; i++) {
          fs.add(producer.send(new ProducerRecord<>(topic, 0, t0 + i * 1000L, "k", "v" + i)));
          producer.flush();
        }
        for (int i = 0; i < 10; i++) assertEquals(i, fs.get(i).get().offset());
      }
      TopicPartition tp = new TopicPartition(topic, 0);
      assertEquals(0, offset(admin, tp, OffsetSpec.earliest()).offset());
      assertEquals(10, offset(admin, tp, OffsetSpec.latest()).offset());
      // The first offset whose timestamp is >= the one asked for.
      ListOffsetsResultInfo at5 = offset(admin, tp, OffsetSpec.forTimestamp(t0 + 5000));
      assertEquals(5, at5.offset());
      assertEquals(t0 + 5000, at5.timestamp());
      assertEquals(6, offset(admin, tp, OffsetSpec.forTimestamp(t0 + 5500)).offset());
      assertEquals(0, offset(admin, tp, OffsetSpec.forTimestamp(t0 - 60_000)).offset());
      // Later than every record: no offset (-1).
      assertEquals(-1, offset(admin, tp, OffsetSpec.forTimestamp(t0 + 60_000)).offset());
      admin.deleteTopics(List.of(topic)).all().get();
    }
  }

  private static ListOffsetsResultInfo offset(Admin admin, TopicPartition tp, OffsetSpec spec)
      throws Exception {
    return admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get();
  }

  private static java.util.Set<String> names(Admin admin) {
    try {
      return admin.listTopics().names().get();
    } catch (Exception e) {
      throw new RuntimeException(e);
    }
  }

  private static Config describe(Admin admin, ConfigResource res) {
    try {
      return admin.describeConfigs(List.of(res)).all().get().get(res);
    } catch (Exception e) {
      throw new RuntimeException(e);
    }
  }

  private static int partitions(Admin admin, String topic) {
    try {
      return admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
    } catch (Exception e) {
      return -1;
    }
  }
}
