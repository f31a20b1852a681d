package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.fjord.e2e.GroupMember.Commit;
import dev.fjord.e2e.GroupMember.Received;
import dev.fjord.e2e.Groups.Sent;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.NoOffsetForPartitionException;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.ConsumerGroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.GroupSubscribedToTopicException;
import org.apache.kafka.common.errors.UnknownMemberIdException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Consumer groups with the classic protocol, as applications use them: subscribe(), the
 * three ways of committing, rebalances, offset reset, static membership and the Admin
 * calls on groups. Tagged so a run can leave them out (-DexcludedGroups=groups).
 */
@Tag("groups")
@Timeout(value = 180, unit = TimeUnit.SECONDS)
@SuppressWarnings("deprecation") // ConsumerGroupState/state(): the one spelling both 3.9 and 4.x have
class GroupsTest {

  @Test
  void threeMembersShareSixPartitionsAndReadEveryRecordOnce() throws Exception {
    String topic = Broker.uniqueTopic("grp-three");
    String group = Groups.uniqueGroup("three");
    try (Admin admin = Broker.admin()) {
      Broker.createTopic(admin, topic, 6, Map.of());
      var sink = new ConcurrentLinkedQueue<Received>();
      List<GroupMember> members = new ArrayList<>();
      try {
        for (int i = 0; i < 3; i++) members.add(GroupMember.start(group, "m" + i, topic, sink));
        Groups.waitForBalance(topic, 6, members, 2);
        Map<String, Set<TopicPartition>> owners = owners(members);

        var sent = Groups.produce(topic, 6, 200, "three");
        Groups.waitForValues(sink, sent.keySet(), members);

        assertEquals(owners, owners(members), "assignment changed while reading");
        Groups.assertExactlyOnce(sent, sink);
        Groups.assertReadByOwner(sink, owners, topic);
        for (GroupMember m : members) {
          assertEquals(owners.get(m.name), partitionsReadBy(sink, m.name, topic), m.name + " read from");
        }
        // commitSync: the group's offsets end where the log does, as each member was told.
        var ends = Groups.ends(topic, sent);
        Broker.waitUntil("committed offsets reach the ends", () -> ends.equals(committedOrEmpty(admin, group)));
        for (GroupMember m : members) {
          for (TopicPartition tp : owners.get(m.name)) {
            assertEquals(ends.get(tp), m.acknowledgedCommits.get(tp), m.name + " last commit of " + tp);
          }
        }
      } finally {
        closeAll(members);
      }
      admin.deleteTopics(List.of(topic)).all().get();
    }
  }

  /**
   * A member reads part of the topic, committing as it goes, and closes; a new member of the
   * same group starts exactly at the committed offsets: nothing is skipped, and (as every
   * processed record was committed) nothing is read twice.
   */
  @ParameterizedTest
  @EnumSource(Commit.class)
  void aNewMemberResumesFromTheCommittedOffsets(Commit mode) throws Exception {
    String topic = Broker.uniqueTopic("grp-resume-" + mode.name().toLowerCase());
    String group = Groups.uniqueGroup("resume-" + mode.name().toLowerCase());
    Map<String, Object> extra = new HashMap<>();
    extra.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "50");
    if (mode == Commit.AUTO) {
      extra.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "true");
      extra.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, "500");
    }
    try (Admin admin = Broker.admin()) {
      Broker.createTopic(admin, topic, 3, Map.of());
      var sent = Groups.produce(topic, 3, 300, "resume");
      int half = sent.size() / 2;

      List<Received> first = new ArrayList<>();
      Map<TopicPartition, Long> atClose = new HashMap<>();
      try (var c = new KafkaConsumer<String, String>(GroupMember.props(group, "first", extra))) {
        c.subscribe(List.of(topic));
        pollUntil(c, first, "first", () -> first.size() >= half, records -> {
          switch (mode) {
            case SYNC -> c.commitSync(Groups.nextOffsets(records));
            case ASYNC -> c.commitAsync(); // close() waits for the ones in flight
            case AUTO -> {}
          }
        });
        for (TopicPartition tp : c.assignment()) atClose.put(tp, c.position(tp));
        if (mode == Commit.AUTO) {
          // The periodic auto-commit reaches the broker on its own, not only at close:
          // keep polling with every partition paused until the group's offsets match.
          c.pause(c.assignment());
          var want = withoutZeros(atClose);
          Broker.waitUntil("auto-commit stores the consumed positions", () -> {
            c.poll(Duration.ofMillis(100));
            return want.equals(withoutZeros(committedOrEmpty(admin, group)));
          });
        }
      }
      // commitAsync() commits every assigned partition, including ones still at 0.
      var committed = withoutZeros(Groups.committedOffsets(admin, group));
      assertEquals(withoutZeros(atClose), committed, "committed offsets after close = positions read to");
      long committedTotal = committed.values().stream().mapToLong(Long::longValue).sum();
      assertTrue(committedTotal > 0 && committedTotal < sent.size(),
          "the first member stopped part-way: committed " + committedTotal + " of " + sent.size());

      List<Received> second = new ArrayList<>();
      Set<String> firstValues = first.stream().map(Received::value).collect(Collectors.toSet());
      Set<String> unread = new HashSet<>(sent.keySet());
      unread.removeAll(firstValues);
      try (var c = new KafkaConsumer<String, String>(GroupMember.props(group, "second", extra))) {
        c.subscribe(List.of(topic));
        pollUntil(c, second, "second", () -> second.stream().map(Received::value).collect(Collectors.toSet())
            .containsAll(unread), records -> {
          if (mode == Commit.SYNC) c.commitSync(Groups.nextOffsets(records));
          if (mode == Commit.ASYNC) c.commitAsync();
        });
      }
      Groups.assertGenuine(sent, second);
      Map<Integer, Long> firstOffsetRead = new HashMap<>();
      for (Received r : second) {
        long from = committed.getOrDefault(new TopicPartition(topic, r.partition()), 0L);
        assertTrue(r.offset() >= from, "re-read " + r + " from before the committed offset " + from);
        firstOffsetRead.putIfAbsent(r.partition(), r.offset());
      }
      for (var e : firstOffsetRead.entrySet()) {
        assertEquals(committed.getOrDefault(new TopicPartition(topic, e.getKey()), 0L), e.getValue(),
            "partition " + e.getKey() + ": the second member starts at the committed offset");
      }
      var both = new ArrayList<>(first);
      both.addAll(second);
      Groups.assertExactlyOnce(sent, both);
      admin.deleteTopics(List.of(topic)).all().get();
    }
  }

  @Test
  void aFourthMemberJoiningRebalancesThePartitions() throws Exception {
    String topic = Broker.uniqueTopic("grp-fourth");
    String group = Groups.uniqueGroup("fourth");
    try (Admin admin = Broker.admin()) {
      Broker.createTopic(admin, topic, 6, Map.of());
      var sink = new ConcurrentLinkedQueue<Received>();
      List<GroupMember> members = new ArrayList<>();
      try {
        for (int i = 0; i < 3; i++) members.add(GroupMember.start(group, "m" + i, topic, sink));
        Groups.waitForBalance(topic, 6, members, 2);
        var before = owners(members);
        int generationBefore = members.get(0).generation();
        Map<String, Integer> revocationsBefore = new HashMap<>();
        for (GroupMember m : members) revocationsBefore.put(m.name, m.revocations.get());

        var batch1 = Groups.produce(topic, 6, 100, "before");
        Groups.waitForValues(sink, batch1.keySet(), members);
        var ends1 = Groups.ends(topic, batch1);
        Broker.waitUntil("batch 1 committed", () -> ends1.equals(committedOrEmpty(admin, group)));
        Groups.assertReadByOwner(sink, before, topic);

        members.add(GroupMember.start(group, "m3", topic, sink));
        Groups.waitForBalance(topic, 6, members, -1);
        var after = owners(members);
        var sizes = after.values().stream().map(Set::size).sorted().toList();
        assertEquals(List.of(1, 1, 2, 2), sizes, "6 partitions over 4 members: " + after);
        for (GroupMember m : members.subList(0, 3)) {
          assertTrue(m.revocations.get() > revocationsBefore.get(m.name), m.name + " took part in the rebalance");
        }
        Broker.waitUntil("every member in the new generation", () ->
            members.stream().allMatch(m -> m.generation() > generationBefore)
                && members.stream().map(GroupMember::generation).distinct().count() == 1);

        List<Received> afterRebalance = new ArrayList<>();
        var batch2 = Groups.produce(topic, 6, 100, "after");
        Groups.waitForValues(sink, batch2.keySet(), members);
        for (Received r : sink) if (batch2.containsKey(r.value())) afterRebalance.add(r);
        Groups.assertReadByOwner(afterRebalance, after, topic);
        assertEquals(after.get("m3"), partitionsReadBy(afterRebalance, "m3", topic), "the new member read its partitions");

        // Commits before the rebalance carried over: nothing of batch 1 was read again.
        var all = new LinkedHashMap<>(batch1);
        all.putAll(batch2);
        Groups.assertExactlyOnce(all, sink);
      } finally {
        closeAll(members);
      }
      admin.deleteTopics(List.of(topic)).all().get();
    }
  }

  @Test
  void autoOffsetResetDecidesWhereAGroupWithoutCommitsStarts() throws Exception {
    String topic = Broker.uniqueTopic("grp-reset");
    try (Admin admin = Broker.admin()) {
      Broker.createTopic(admin, topic, 3, Map.of());
      var old = Groups.produce(topic, 3, 10, "old");
      var tps = Groups.partitions(topic, 3);

      // earliest: from offset 0 of each partition.
      List<Received> early = new ArrayList<>();
      try (var c = new KafkaConsumer<String, String>(
          GroupMember.props(Groups.uniqueGroup("earliest"), "earliest", Map.of()))) {
        c.subscribe(List.of(topic));
        pollUntil(c, early, "earliest", () -> early.size() >= old.size(), r -> {});
      }
      Groups.assertExactlyOnce(old, early);

      // latest: from the end, so only what is produced after the position is fixed.
      Map<String, Sent> all = new HashMap<>(old);
      List<Received> late = new ArrayList<>();
      try (var c = new KafkaConsumer<String, String>(GroupMember.props(Groups.uniqueGroup("latest"), "latest",
          Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "latest")))) {
        c.subscribe(List.of(topic));
        pollUntil(c, late, "latest", () -> c.assignment().size() == 3, r -> {});
        for (TopicPartition tp : tps) assertEquals(10L, c.position(tp), "latest position of " + tp);
        var fresh = Groups.produce(topic, 3, 5, "fresh");
        pollUntil(c, late, "latest", () -> late.size() >= fresh.size(), r -> {});
        Groups.assertExactlyOnce(fresh, late);
        all.putAll(fresh);
      }

      // none: the consumer refuses to guess.
      String noneGroup = Groups.uniqueGroup("none");
      Map<String, Object> none = Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
      try (var c = new KafkaConsumer<String, String>(GroupMember.props(noneGroup, "none", none))) {
        c.subscribe(List.of(topic));
        NoOffsetForPartitionException e = null;
        long deadline = System.nanoTime() + Broker.DEADLINE.toNanos();
        while (e == null) {
          assertTrue(System.nanoTime() < deadline, "no NoOffsetForPartitionException within " + Broker.DEADLINE);
          try {
            var records = c.poll(Duration.ofMillis(200));
            assertTrue(records.isEmpty(), "read records without any committed offset");
          } catch (NoOffsetForPartitionException thrown) {
            e = thrown;
          }
        }
        assertFalse(e.partitions().isEmpty());
        assertTrue(tps.containsAll(e.partitions()), "partitions named: " + e.partitions());
      }

      // With committed offsets, reset=none starts there (the group is empty, so Admin may set them).
      admin.alterConsumerGroupOffsets(noneGroup, Map.of(
          tps.get(0), new OffsetAndMetadata(4), tps.get(1), new OffsetAndMetadata(7),
          tps.get(2), new OffsetAndMetadata(10))).all().get();
      Map<String, Sent> expected = new HashMap<>();
      all.forEach((v, s) -> {
        if (s.offset() >= List.of(4, 7, 10).get(s.partition())) expected.put(v, s);
      });
      assertEquals(6 + 5 + 3 + 5 + 5, expected.size()); // 15 records per partition now
      List<Received> resumed = new ArrayList<>();
      try (var c = new KafkaConsumer<String, String>(GroupMember.props(noneGroup, "none2", none))) {
        c.subscribe(List.of(topic));
        pollUntil(c, resumed, "none2", () -> resumed.size() >= expected.size(), r -> {});
      }
      Groups.assertExactlyOnce(expected, resumed);
      admin.deleteTopics(List.of(topic)).all().get();
    }
  }

  @Test
  void twoGroupsOnOneTopicEachReadEveryRecord() throws Exception {
    String topic = Broker.uniqueTopic("grp-two");
    try (Admin admin = Broker.admin()) {
      Broker.createTopic(admin, topic, 6, Map.of());
      var sinkA = new ConcurrentLinkedQueue<Received>();
      var sinkB = new ConcurrentLinkedQueue<Received>();
      List<GroupMember> a = new ArrayList<>();
      List<GroupMember> b = new ArrayList<>();
      String groupA = Groups.uniqueGroup("a");
      String groupB = Groups.uniqueGroup("b");
      try {
        for (int i = 0; i < 2; i++) {
          a.add(GroupMember.start(groupA, "a" + i, topic, sinkA));
          b.add(GroupMember.start(groupB, "b" + i, topic, sinkB));
        }
        Groups.waitForBalance(topic, 6, a, 3);
        Groups.waitForBalance(topic, 6, b, 3);
        var sent = Groups.produce(topic, 6, 100, "two");
        Groups.waitForValues(sinkA, sent.keySet(), a);
        Groups.waitForValues(sinkB, sent.keySet(), b);
        Groups.assertExactlyOnce(sent, sinkA);
        Groups.assertExactlyOnce(sent, sinkB);
        Groups.assertReadByOwner(sinkA, owners(a), topic);
        Groups.assertReadByOwner(sinkB, owners(b), topic);
        var ends = Groups.ends(topic, sent);
        Broker.waitUntil("both groups committed to the end", () ->
            ends.equals(committedOrEmpty(admin, groupA)) && ends.equals(committedOrEmpty(admin, groupB)));
      } finally {
        closeAll(a);
        closeAll(b);
      }
      admin.deleteTopics(List.of(topic)).all().get();
    }
  }

  @Test
  void adminListsDescribesAltersAndDeletesGroups() throws Exception {
    String topic = Broker.uniqueTopic("grp-admin");
    String group = Groups.uniqueGroup("admin");
    try (Admin admin = Broker.admin()) {
      Broker.createTopic(admin, topic, 6, Map.of());
      var tps = Groups.partitions(topic, 6);
      var sink = new ConcurrentLinkedQueue<Received>();
      List<GroupMember> members = new ArrayList<>();
      try {
        for (String name : List.of("x", "y")) members.add(GroupMember.start(group, name, topic, sink));
        Groups.waitForBalance(topic, 6, members, 3);
        var sent = Groups.produce(topic, 6, 50, "admin");
        Groups.waitForValues(sink, sent.keySet(), members);
        var ends = Groups.ends(topic, sent);
        Broker.waitUntil("committed to the end", () -> ends.equals(committedOrEmpty(admin, group)));

        ConsumerGroupListing listing = listing(admin, group);
        assertNotNull(listing, "listConsumerGroups has " + group);
        assertFalse(listing.isSimpleConsumerGroup());
        listing.state().ifPresent(s -> assertEquals(ConsumerGroupState.STABLE, s, "listed state"));

        ConsumerGroupDescription d = describe(admin, group);
        assertEquals(group, d.groupId());
        assertEquals(ConsumerGroupState.STABLE, d.state());
        assertFalse(d.isSimpleConsumerGroup());
        assertEquals("range", d.partitionAssignor());
        assertNotNull(d.coordinator());
        assertEquals(2, d.members().size());
        Set<String> memberIds = new HashSet<>();
        for (MemberDescription m : d.members()) {
          assertFalse(m.consumerId().isEmpty());
          memberIds.add(m.consumerId());
          assertTrue(m.groupInstanceId().isEmpty());
          String name = m.clientId().substring("fjord-e2e-".length());
          var member = members.stream().filter(g -> g.name.equals(name)).findFirst().orElseThrow(
              () -> new AssertionError("member with client id " + m.clientId()));
          assertEquals(member.assignment(), m.assignment().topicPartitions(), "assignment of " + name);
        }
        assertEquals(2, memberIds.size(), "distinct member ids");

        var committed = Groups.committed(admin, group);
        for (TopicPartition tp : tps) {
          assertEquals(ends.get(tp), committed.get(tp).offset(), "committed " + tp);
          assertEquals("", committed.get(tp).metadata());
        }

        // While members are in the group, the group and its subscribed offsets stay.
        var notEmpty = assertThrows(ExecutionException.class,
            () -> admin.deleteConsumerGroups(List.of(group)).all().get());
        assertInstanceOf(GroupNotEmptyException.class, notEmpty.getCause());
        var subscribed = assertThrows(ExecutionException.class,
            () -> admin.deleteConsumerGroupOffsets(group, Set.of(tps.get(0))).all().get());
        assertInstanceOf(GroupSubscribedToTopicException.class, subscribed.getCause());
        // An Admin commit comes from no member: refused while the group has members.
        var active = assertThrows(ExecutionException.class,
            () -> admin.alterConsumerGroupOffsets(group, Map.of(tps.get(0), new OffsetAndMetadata(1))).all().get());
        assertInstanceOf(UnknownMemberIdException.class, active.getCause());
        assertEquals(ends, Groups.committedOffsets(admin, group), "refused calls changed nothing");
      } finally {
        closeAll(members);
      }

      // Members left on close: the group is empty at once, its offsets kept.
      Broker.waitUntil("group empty", () -> {
        var d = describe(admin, group);
        return d.state() == ConsumerGroupState.EMPTY && d.members().isEmpty();
      });
      admin.alterConsumerGroupOffsets(group, Map.of(
          tps.get(0), new OffsetAndMetadata(3, "fjord-e2e-meta"),
          tps.get(1), new OffsetAndMetadata(0))).all().get();
      var altered = Groups.committed(admin, group);
      assertEquals(3, altered.get(tps.get(0)).offset());
      assertEquals("fjord-e2e-meta", altered.get(tps.get(0)).metadata(), "commit metadata round-trips");
      assertEquals(0, altered.get(tps.get(1)).offset());
      assertEquals(50, altered.get(tps.get(2)).offset(), "untouched partition keeps its offset");

      admin.deleteConsumerGroupOffsets(group, Set.of(tps.get(0))).all().get();
      var afterDelete = Groups.committedOffsets(admin, group);
      assertFalse(afterDelete.containsKey(tps.get(0)), "deleted offset gone: " + afterDelete);
      assertEquals(5, afterDelete.size(), "other offsets kept: " + afterDelete);

      admin.deleteConsumerGroups(List.of(group)).all().get();
      Broker.waitUntil("group no longer listed", () -> listing(admin, group) == null);
      assertEquals(Map.of(), Groups.committedOffsets(admin, group), "offsets of a deleted group");
      admin.deleteTopics(List.of(topic)).all().get();
    }
  }

  /**
   * KIP-345: a member with group.instance.id that restarts within the session timeout gets
   * its partitions back without a rebalance, so the other member keeps reading undisturbed.
   */
  @Test
  void aStaticMemberRestartsWithoutARebalance() throws Exception {
    String topic = Broker.uniqueTopic("grp-static");
    String group = Groups.uniqueGroup("static");
    try (Admin admin = Broker.admin()) {
      Broker.createTopic(admin, topic, 4, Map.of());
      var sink = new ConcurrentLinkedQueue<Received>();
      GroupMember a = null;
      GroupMember b = null;
      try {
        a = staticMember(group, "a", topic, sink);
        b = staticMember(group, "b", topic, sink);
        Groups.waitForBalance(topic, 4, List.of(a, b), 2);
        var aOwned = a.assignment();
        int generation = b.generation();
        int bRevocations = b.revocations.get();
        String aMemberId = memberIdOf(describe(admin, group), group + "-a");

        a.close(); // a static member does not leave the group on close
        a = null;
        a = staticMember(group, "a", topic, sink);
        GroupMember restarted = a;
        Broker.waitUntil("restarted member has partitions", () -> {
          restarted.checkAlive();
          return !restarted.assignment().isEmpty();
        });
        assertEquals(aOwned, a.assignment(), "partitions after restart");
        assertEquals(generation, a.generation(), "same generation: no rebalance");
        assertEquals(generation, b.generation(), "b still in its generation");
        assertEquals(bRevocations, b.revocations.get(), "b lost no partitions");

        var d = describe(admin, group);
        assertEquals(ConsumerGroupState.STABLE, d.state());
        assertEquals(Set.of(group + "-a", group + "-b"),
            d.members().stream().map(m -> m.groupInstanceId().orElse("")).collect(Collectors.toSet()));
        assertNotEquals(aMemberId, memberIdOf(d, group + "-a"), "the restarted instance has a new member id");

        var sent = Groups.produce(topic, 4, 50, "static");
        Groups.waitForValues(sink, sent.keySet(), List.of(a, b));
        Groups.assertExactlyOnce(sent, sink);
        Groups.assertReadByOwner(sink, Map.of("a", a.assignment(), "b", b.assignment()), topic);
      } finally {
        if (a != null) a.close();
        if (b != null) b.close();
      }
      admin.deleteTopics(List.of(topic)).all().get();
    }
  }

  // --- helpers ---

  private static GroupMember staticMember(String group, String name, String topic,
      ConcurrentLinkedQueue<Received> sink) {
    var props = GroupMember.props(group, name, Map.of(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, group + "-" + name));
    return new GroupMember(name, topic, props, Commit.SYNC, sink);
  }

  private static String memberIdOf(ConsumerGroupDescription d, String instanceId) {
    return d.members().stream().filter(m -> m.groupInstanceId().equals(java.util.Optional.of(instanceId)))
        .map(MemberDescription::consumerId).findFirst()
        .orElseThrow(() -> new AssertionError("no member with instance id " + instanceId + ": " + d));
  }

  private interface RecordsAction {
    void after(org.apache.kafka.clients.consumer.ConsumerRecords<String, String> records);
  }

  /** Polls (acting on each non-empty batch) until the condition holds, with the suite's deadline. */
  private static void pollUntil(KafkaConsumer<String, String> c, List<Received> into, String name,
      java.util.function.BooleanSupplier done, RecordsAction action) {
    long deadline = System.nanoTime() + Broker.DEADLINE.toNanos();
    while (!done.getAsBoolean()) {
      if (System.nanoTime() > deadline) fail(name + ": not done within " + Broker.DEADLINE + ", read " + into.size());
      var records = c.poll(Duration.ofMillis(200));
      for (ConsumerRecord<String, String> r : records) {
        into.add(new Received(name, r.partition(), r.offset(), r.value()));
      }
      if (!records.isEmpty()) action.after(records);
    }
  }

  private static Map<String, Set<TopicPartition>> owners(List<GroupMember> members) {
    Map<String, Set<TopicPartition>> out = new HashMap<>();
    for (GroupMember m : members) out.put(m.name, m.assignment());
    return out;
  }

  private static Set<TopicPartition> partitionsReadBy(Iterable<Received> got, String member, String topic) {
    Set<TopicPartition> out = new HashSet<>();
    for (Received r : got) if (r.member().equals(member)) out.add(new TopicPartition(topic, r.partition()));
    return out;
  }

  /** Positions of 0 have nothing to commit: a partition the member never read from. */
  private static Map<TopicPartition, Long> withoutZeros(Map<TopicPartition, Long> positions) {
    Map<TopicPartition, Long> out = new HashMap<>(positions);
    out.values().removeIf(v -> v == 0L);
    return out;
  }

  private static Map<TopicPartition, Long> committedOrEmpty(Admin admin, String group) {
    try {
      return Groups.committedOffsets(admin, group);
    } catch (Exception e) {
      return Map.of();
    }
  }

  private static ConsumerGroupListing listing(Admin admin, String group) {
    try {
      for (ConsumerGroupListing l : admin.listConsumerGroups().all().get()) {
        if (l.groupId().equals(group)) return l;
      }
      return null;
    } catch (Exception e) {
      throw new AssertionError("listConsumerGroups", e);
    }
  }

  private static ConsumerGroupDescription describe(Admin admin, String group) {
    try {
      return admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
    } catch (Exception e) {
      throw new AssertionError("describeConsumerGroups " + group, e);
    }
  }

  private static void closeAll(List<GroupMember> members) throws InterruptedException {
    AssertionError first = null;
    for (GroupMember m : members) {
      try {
        m.close();
      } catch (AssertionError e) {
        if (first == null) first = e;
      }
    }
    if (first != null) throw first;
  }
}
