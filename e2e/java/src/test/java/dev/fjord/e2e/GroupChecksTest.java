package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.fjord.e2e.GroupMember.Received;
import dev.fjord.e2e.Groups.Sent;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The group tests' checkers must be able to fail: a record lost, read twice, read at the
 * wrong place, never sent, or read by a member not holding its partition. Needs no broker.
 */
class GroupChecksTest {
  static final String TOPIC = "t";
  static final Map<String, Set<TopicPartition>> OWNERS = Map.of(
      "a", Set.of(new TopicPartition(TOPIC, 0), new TopicPartition(TOPIC, 1)),
      "b", Set.of(new TopicPartition(TOPIC, 2), new TopicPartition(TOPIC, 3)));

  private static Map<String, Sent> sent() {
    Map<String, Sent> sent = new LinkedHashMap<>();
    for (int p = 0; p < 4; p++) for (int o = 0; o < 5; o++) sent.put("v-p" + p + "-" + o, new Sent(p, o));
    return sent;
  }

  private static List<Received> correct() {
    List<Received> got = new ArrayList<>();
    sent().forEach((v, s) -> got.add(new Received(s.partition() < 2 ? "a" : "b", s.partition(), s.offset(), v)));
    return got;
  }

  @Test
  void acceptsACorrectRead() {
    Groups.assertExactlyOnce(sent(), correct());
    Groups.assertAtLeastOnce(sent(), correct());
    Groups.assertReadByOwner(correct(), OWNERS, TOPIC);
  }

  @ParameterizedTest
  @ValueSource(strings = {"lost", "read twice", "wrong offset", "never sent"})
  void exactlyOnceCatches(String damage) {
    List<Received> got = damaged(damage);
    assertThrows(AssertionError.class, () -> Groups.assertExactlyOnce(sent(), got));
    if (!damage.equals("read twice")) {
      assertThrows(AssertionError.class, () -> Groups.assertAtLeastOnce(sent(), got));
    }
  }

  @Test
  void ownerCheckCatchesAReadByTheWrongMember() {
    List<Received> got = correct();
    Received r = got.get(0);
    got.set(0, new Received("b", r.partition(), r.offset(), r.value()));
    assertThrows(AssertionError.class, () -> Groups.assertReadByOwner(got, OWNERS, TOPIC));
  }

  private static List<Received> damaged(String damage) {
    List<Received> got = correct();
    switch (damage) {
      case "lost" -> got.remove(7);
      case "read twice" -> got.add(got.get(3));
      case "wrong offset" -> {
        Received r = got.get(3);
        got.set(3, new Received(r.member(), r.partition(), r.offset() + 1, r.value()));
      }
      case "never sent" -> got.add(new Received("a", 0, 99, "v-p0-99"));
      default -> throw new IllegalArgumentException(damage);
    }
    return got;
  }
}
