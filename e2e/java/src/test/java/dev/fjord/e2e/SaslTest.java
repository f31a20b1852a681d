package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The Java client with SASL: SCRAM-SHA-512 and PLAIN over SASL_SSL (FJORD_SASL_SSL_BOOTSTRAP,
 * no client certificate), SCRAM-SHA-256 over SASL_PLAINTEXT (FJORD_SASL_BOOTSTRAP), as
 * FJORD_SASL_USER / FJORD_SASL_PASSWORD; skipped where the listener is not set.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class SaslTest {
  static final int RECORDS = 200;

  static Properties client(String protocol, String mechanism, String password) {
    String bootstrap = Security.require(
        protocol.equals("SASL_SSL") ? "FJORD_SASL_SSL_BOOTSTRAP" : "FJORD_SASL_BOOTSTRAP");
    return Security.sasl(bootstrap, protocol, mechanism, Security.require("FJORD_SASL_USER"),
        password == null ? Security.require("FJORD_SASL_PASSWORD") : password);
  }

  @ParameterizedTest
  @CsvSource({"SASL_SSL, SCRAM-SHA-512", "SASL_SSL, PLAIN", "SASL_PLAINTEXT, SCRAM-SHA-256"})
  void recordsGoAndComeBack(String protocol, String mechanism) throws Exception {
    Security.roundTrip(client(protocol, mechanism, null), Broker.uniqueTopic("sasl"), RECORDS);
  }

  @ParameterizedTest
  @CsvSource({"SASL_SSL, SCRAM-SHA-512", "SASL_SSL, PLAIN", "SASL_PLAINTEXT, SCRAM-SHA-256"})
  void aWrongPasswordIsRefusedAsKafkaRefusesIt(String protocol, String mechanism) {
    Properties p = Security.with(client(protocol, mechanism, "wrong"),
        AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000",
        AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
    try (Admin admin = Admin.create(p)) {
      ExecutionException e = assertThrows(ExecutionException.class,
          () -> admin.describeCluster().nodes().get(30, TimeUnit.SECONDS));
      assertInstanceOf(SaslAuthenticationException.class, e.getCause(), protocol + " " + mechanism);
    }
  }
}
