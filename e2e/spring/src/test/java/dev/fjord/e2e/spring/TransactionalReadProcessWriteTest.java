package dev.fjord.e2e.spring;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
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
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.Banner;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.logging.LoggingSystem;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.kafka.annotation.KafkaListener;
import org.springframework.kafka.config.ConcurrentKafkaListenerContainerFactory;
import org.springframework.kafka.core.KafkaTemplate;
import org.springframework.kafka.listener.AfterRollbackProcessor;
import org.springframework.kafka.listener.DefaultAfterRollbackProcessor;
import org.springframework.kafka.transaction.KafkaTransactionManager;
import org.springframework.util.backoff.FixedBackOff;

/**
 * A read-process-write Spring Boot application as Spring Kafka users write it: a
 * @KafkaListener whose container runs each record in a transaction of the
 * KafkaTransactionManager Boot configures (the
 * consumer's offsets are sent to that transaction, KIP-447), writing one output record
 * per input through the transactional KafkaTemplate. One transaction in ten throws on
 * purpose after its output record reached the log, so it aborts and the record comes
 * again. Meanwhile one broker of the test's own 3-broker cluster is killed with SIGKILL
 * and started again (NumberedRun). The read_committed output must hold every input once
 * and no record of an aborted transaction, which a read_uncommitted reader does see.
 *
 * It owns its cluster (ports 17100-17125), so it runs apart from the shared-broker suite:
 * e2e/eos/run.sh, with the JUnit tag "eos".
 */
@Tag("eos")
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class TransactionalReadProcessWriteTest {
  static final int RECORDS = 600;
  static final int PARTITIONS = 4;
  static final int PORT = 17100;
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

    @KafkaListener(id = "eos-processor", topics = "${eos.input}", groupId = "${eos.group}")
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

  /**
   * The application as Spring Boot wires it from properties alone: with
   * spring.kafka.producer.transaction-id-prefix set, Boot's Kafka auto-configuration makes
   * the producer factory transactional, defines the KafkaTransactionManager and gives it
   * to the listener container factory, which also takes the AfterRollbackProcessor bean.
   * No component scan: the other test classes' configurations stay out.
   */
  @Configuration
  @EnableAutoConfiguration
  static class App {
    /**
     * Retry a rolled-back record for ever: the default gives up after ten tries and skips
     * it, which a broker failover can reach and which would lose the record.
     */
    @Bean
    AfterRollbackProcessor<Object, Object> afterRollbackProcessor() {
      return new DefaultAfterRollbackProcessor<>(new FixedBackOff(100, FixedBackOff.UNLIMITED_ATTEMPTS));
    }

    @Bean
    Processor processor(KafkaTemplate<String, String> template, @Value("${eos.output}") String output) {
      return new Processor(template, output);
    }
  }

  static ConfigurableApplicationContext startApp(String bootstrap, Map<String, Object> eos) {
    // Logging stays with slf4j-simple, as in the rest of the suite.
    System.setProperty(LoggingSystem.SYSTEM_PROPERTY, LoggingSystem.NONE);
    Map<String, Object> props = new HashMap<>(eos);
    props.put("spring.kafka.bootstrap-servers", bootstrap);
    props.put("spring.kafka.consumer.isolation-level", "read-committed");
    props.put("spring.kafka.consumer.auto-offset-reset", "earliest");
    props.put("spring.kafka.consumer.max-poll-records", 50);
    props.put("spring.kafka.consumer.properties.group.protocol", "classic");
    props.put("spring.kafka.consumer.properties.session.timeout.ms", 10000);
    props.put("spring.kafka.consumer.properties.heartbeat.interval.ms", 1000);
    props.put("spring.kafka.producer.transaction-id-prefix", eos.get("eos.txn-prefix"));
    props.put("spring.kafka.listener.concurrency", PARTITIONS);
    return new SpringApplicationBuilder(App.class).web(WebApplicationType.NONE)
        .bannerMode(Banner.Mode.OFF).properties(props).run();
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
      try (var ctx = startApp(cluster.bootstrap(), Map.of("eos.input", input, "eos.output", output,
          "eos.group", "eos-spring-group-" + suffix, "eos.txn-prefix", prefix))) {
        var factory = ctx.getBean(ConcurrentKafkaListenerContainerFactory.class);
        assertInstanceOf(KafkaTransactionManager.class,
            factory.getContainerProperties().getKafkaAwareTransactionManager(),
            "Boot gave the listener containers the KafkaTransactionManager");
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
