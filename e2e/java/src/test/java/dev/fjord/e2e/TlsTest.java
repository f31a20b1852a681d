package dev.fjord.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.errors.SslAuthenticationException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Java client over an SSL listener that requires client certificates
 * (FJORD_SSL_BOOTSTRAP) and one that asks for none (FJORD_SSL_NOCERT_BOOTSTRAP), with the
 * files in FJORD_SSL_DIR; each test is skipped without its listener.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class TlsTest {
  static final int RECORDS = 500;

  @Test
  void recordsGoAndComeBackOverSslAndMetadataNamesTheSslPort() throws Exception {
    String bootstrap = Security.require("FJORD_SSL_BOOTSTRAP");
    Properties client = Security.ssl(bootstrap, "client");
    Security.roundTrip(client, Broker.uniqueTopic("tls"), RECORDS);
    try (Admin admin = Admin.create(client)) {
      int port = Integer.parseInt(bootstrap.substring(bootstrap.lastIndexOf(':') + 1));
      for (Node n : admin.describeCluster().nodes().get(60, TimeUnit.SECONDS)) {
        assertEquals(port, n.port(), "DescribeCluster over SSL names the SSL listener");
      }
    }
  }

  @Test
  void recordsGoAndComeBackWithoutACertificateWhereNoneIsAsked() throws Exception {
    String bootstrap = Security.require("FJORD_SSL_NOCERT_BOOTSTRAP");
    Security.roundTrip(Security.ssl(bootstrap, null), Broker.uniqueTopic("tls-nocert"), RECORDS);
  }

  /** No certificate, one from another CA, and an expired one from the trusted CA. */
  @ParameterizedTest
  @ValueSource(strings = {"", "stranger", "expired"})
  void aMissingUntrustedOrExpiredCertificateIsRefusedAsKafkaRefusesIt(String identity) {
    Properties p = Security.ssl(Security.require("FJORD_SSL_BOOTSTRAP"),
        identity.isEmpty() ? null : identity);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
    try (Admin admin = Admin.create(p)) {
      ExecutionException e = assertThrows(ExecutionException.class,
          () -> admin.describeCluster().nodes().get(30, TimeUnit.SECONDS));
      assertInstanceOf(SslAuthenticationException.class, e.getCause(), "keystore " + identity);
    }
  }
}
