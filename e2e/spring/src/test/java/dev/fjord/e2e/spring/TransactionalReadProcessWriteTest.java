package dev.fjord.e2e.spring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.fjord.e2e.eos.KillableCluster;
import dev.fjord.e2e.eos.NumberedRun;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.MapPropertySource;
import org.springframework.kafka.annotation.EnableKafka;
import org.springframework.kafka.annotation.KafkaListener;
import org.springframework.kafka.config.ConcurrentKafkaListenerContainerFactory;
import org.springframework.kafka.core.ConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.core.KafkaTemplate;
import org.springframework.kafka.core.ProducerFactory;
import org.springframework.kafka.listener.DefaultAfterRollbackProcessor;
import org.springframework.kafka.transaction.KafkaTransactionManager;
import org.springframework.util.backoff.FixedBackOff;

/**
 * A read-process-write application as Spring Kafka users write it: a @KafkaListener whose
 * container runs each record in a transaction of the KafkaTransactionManager (the
 * consumer's offsets are sent to that transaction, KIP-447), writing one output record
 * per input through the transactional KafkaTemplate. One transaction in ten throws on
 * purpose after its output record reached the log, so it aborts and the record comes
 * again. Meanwhile one broker of the test's own 3-broker cluster is killed with SIGKILL
 * and started again (NumberedRun). The read_committed output must hold every input once
 * and no record of an aborted transaction, which a read_uncommitted reader does see.
 *
 * It owns its cluster (ports 43100-43125), so it runs apart from the shared-broker suite:
 * e2e/eos/run.sh, with the JUnit tag "eos".
 */
@Tag("eos")
@Timeout(value = 420, unit = TimeUnit.SECONDS)
class TransactionalReadProcessWriteTest {
  static final int RECORDS = 1500;
  static final int PARTITIONS = 4;
  static final int PORT = 43100;
  /** Inputs whose number ends in this digit fail their first transaction. */
  static final int DOOMED_DIGIT = 3;
  static final String DOOMED = ":doomed";

  static final class Processor {
    final KafkaTemplate<String, String> template;
    final String output;
    /** Inputs whose first transaction was made to fail. */
    final Set<Integer> failedOnce = ConcurrentHashMap.newKeySet();
    /** Of those, the ones whose doomed output record the brokers acknowledged. */
    final Set<Integer> doomedInLog = ConcurrentHashMap.newKeySet();

    Processor(KafkaTemplate<String, String> template, String output) {
      this.template = template;
      this.output = output;
    }

    @KafkaListener(id = "eos-processor", topics = "${eos.input}", groupId = "${eos.group}", concurrency = "2")
    void process(ConsumerRecord<String, String> r) throws Exception {
      int i = Integer.parseInt(r.value());
      if (i % 10 == DOOMED_DIGIT && failedOnce.add(i)) {
        // Acknowledged before the throw, so the aborted record is in the log for sure.
        template.send(output, r.key(), i + DOOMED).get(60, TimeUnit.SECONDS);
        doomedInLog.add(i);
        throw new IllegalStateException("input " + i + " fails its first transaction on purpose");
      }
      template.send(output, r.key(), r.value());
    }
  }

  @Configuration
  @EnableKafka
  static class App {
    @Value("${eos.bootstrap}")
    String bootstrap;

    @Bean
    ProducerFactory<String, String> producerFactory(@Value("${eos.txn-prefix}") String prefix) {
      var pf = new DefaultKafkaProducerFactory<String, String>(Map.of(
          ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
          ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class,
          ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class));
      pf.setTransactionIdPrefix(prefix);
      return pf;
    }

    @Bean
    KafkaTransactionManager<String, String> kafkaTransactionManager(ProducerFactory<String, String> pf) {
      return new KafkaTransactionManager<>(pf);
    }

    @Bean
    KafkaTemplate<String, String> kafkaTemplate(ProducerFactory<String, String> pf) {
      return new KafkaTemplate<>(pf);
    }

    @Bean
    ConsumerFactory<String, String> consumerFactory() {
      Map<String, Object> p = new HashMap<>();
      p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
      p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
      // Only committed input: the test's input is not transactional, but an application
      // reading another one's output must not see its aborted records.
      p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
      p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
      p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10000);
      p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
      p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 50);
      p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
      p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
      return new DefaultKafkaConsumerFactory<>(p);
    }

    @Bean
    ConcurrentKafkaListenerContainerFactory<String, String> kafkaListenerContainerFactory(
        ConsumerFactory<String, String> cf, KafkaTransactionManager<String, String> tm) {
      var factory = new ConcurrentKafkaListenerContainerFactory<String, String>();
      factory.setConsumerFactory(cf);
      factory.getContainerProperties().setKafkaAwareTransactionManager(tm);
      // Retry a rolled-back record for ever: the default gives up after ten tries and
      // skips it, which a broker failover can reach and which would lose the record.
      factory.setAfterRollbackProcessor(
          new DefaultAfterRollbackProcessor<>(new FixedBackOff(100, FixedBackOff.UNLIMITED_ATTEMPTS)));
      return factory;
    }

    @Bean
    Processor processor(KafkaTemplate<String, String> template, @Value("${eos.output}") String output) {
      return new Processor(template, output);
    }
  }

  @Test
  void everyInputOnceThroughAbortsAndABrokerKill() throws Exception {
    String suffix = UUID.randomUUID().toString().substring(0, 8);
    String input = "eos-spring-in-" + suffix;
    String output = "eos-spring-out-" + suffix;
    String prefix = "eos-spring-" + suffix + "-";
    try (var cluster = KillableCluster.start("spring-eos-cluster", PORT)) {
      cluster.createTopics(PARTITIONS, input, output);
      Processor processor;
      try (var ctx = new AnnotationConfigApplicationContext()) {
        ctx.getEnvironment().getPropertySources().addFirst(new MapPropertySource("eos", Map.of(
            "eos.bootstrap", cluster.bootstrap(), "eos.input", input, "eos.output", output,
            "eos.group", "eos-spring-group-" + suffix, "eos.txn-prefix", prefix)));
        ctx.register(App.class);
        ctx.refresh();
        processor = ctx.getBean(Processor.class);
        NumberedRun.run(cluster, input, output, RECORDS, () -> cluster.victim(prefix, output));
      }

      List<String> committed = NumberedRun.readAll(cluster.bootstrap(), output, IsolationLevel.READ_COMMITTED, RECORDS);
      NumberedRun.assertEachNumberOnce("read_committed output", committed, RECORDS);
      assertTrue(committed.stream().noneMatch(v -> v.endsWith(DOOMED)),
          "read_committed output holds records of aborted transactions");

      assertEquals(RECORDS / 10, processor.failedOnce.size(), "inputs made to fail once");
      assertTrue(!processor.doomedInLog.isEmpty(), "no aborted record reached the log");
      Set<Integer> doomedSeen = new TreeSet<>();
      for (String v : NumberedRun.readAll(cluster.bootstrap(), output, IsolationLevel.READ_UNCOMMITTED, RECORDS)) {
        if (v.endsWith(DOOMED)) doomedSeen.add(NumberedRun.numberOf(v));
      }
      Set<Integer> unseen = new TreeSet<>(processor.doomedInLog);
      unseen.removeAll(doomedSeen);
      assertTrue(unseen.isEmpty(), "aborted records acknowledged but not read by read_uncommitted: " + unseen);
      System.err.printf("eos: %d inputs once in the read_committed output; %d aborted records seen only by read_uncommitted%n",
          RECORDS, doomedSeen.size());
    }
  }
}
