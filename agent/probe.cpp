#include "agent/probe.h"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/fs.h"
#include "common/handle.h"
#include "version.h"

namespace k3sma {
namespace {

using Clock = std::chrono::steady_clock;
using SslCtxPtr = Owned<SSL_CTX, SSL_CTX_free>;
using SslPtr = Owned<SSL, SSL_free>;
using BioPtr = Owned<BIO, BIO_free_all>;
using X509Ptr = Owned<X509, X509_free>;
using AddrInfoPtr = Owned<addrinfo, freeaddrinfo>;

// The OpenSSL error queue as text, emptied.
std::string sslErrors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    text += (text.empty() ? "" : "; ") + std::string(buf);
  }
  return text.empty() ? "unknown TLS error" : text;
}

int msLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits for fd to become readable or writable before the deadline.
bool waitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, msLeft(deadline));
    if (r > 0) {
      return true;
    }
    if (r == 0 || errno != EINTR) {
      return false;
    }
  }
}

// A non-blocking TCP connection to host:port, trying each address until one answers.
Result<Fd> connectTcp(const std::string& host, uint16_t port, Clock::time_point deadline) {
  const std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* raw = nullptr;
  const int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &raw);
  AddrInfoPtr addresses(raw);
  if (gai != 0) {
    return Error{"resolve " + host + ": " + gai_strerror(gai), ErrorKind::kProbe};
  }
  std::string last_error = "no address";
  for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
    Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd.valid()) {
      last_error = errnoText(errno);
      continue;
    }
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last_error = errnoText(errno);
      continue;
    }
    if (!waitFor(fd.get(), POLLOUT, deadline)) {
      return Error{"connect " + where + ": timed out", ErrorKind::kProbe};
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      last_error = errnoText(err != 0 ? err : errno);
      continue;
    }
    return fd;
  }
  return Error{"connect " + where + ": " + last_error, ErrorKind::kProbe};
}

// The configured CA certificates, added to the store next to the system's.
Status addCaCertificates(X509_STORE* store, const std::string& ca_pem) {
  BioPtr bio(BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())));
  if (!bio) {
    return Error{"load the CA: " + sslErrors(), ErrorKind::kProbe};
  }
  int added = 0;
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    if (X509_STORE_add_cert(store, cert.get()) != 1) {
      return Error{"load the CA: " + sslErrors(), ErrorKind::kProbe};
    }
    ++added;
  }
  ERR_clear_error();  // the loop ends on "no start line": expected, not an error
  if (added == 0) {
    return Error{"load the CA: no certificate in it", ErrorKind::kProbe};
  }
  return Ok{};
}

// An IPv4 or IPv6 literal: checked against the certificate's IP SANs, and sent without SNI.
bool isIpAddress(const std::string& host) {
  return host.find(':') != std::string::npos ||
         host.find_first_not_of("0123456789.") == std::string::npos;
}

// Drives one SSL_connect/SSL_read/SSL_write step that may want to wait for the socket.
bool waitSsl(SSL* ssl, int rc, int fd, Clock::time_point deadline) {
  const int e = SSL_get_error(ssl, rc);
  if (e == SSL_ERROR_WANT_READ) {
    return waitFor(fd, POLLIN, deadline);
  }
  if (e == SSL_ERROR_WANT_WRITE) {
    return waitFor(fd, POLLOUT, deadline);
  }
  return false;
}

// The status code of an HTTP/1.x status line ("HTTP/1.1 401 Unauthorized"), 0 if none.
int statusCode(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12 || response[8] != ' ') {
    return 0;
  }
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (response[i] < '0' || response[i] > '9') {
      return 0;
    }
    code = code * 10 + (response[i] - '0');
  }
  return code;
}

}  // namespace

ProbeResult probeCache(const CacheRegistry& registry, const std::string& ca_pem,
                       std::chrono::milliseconds timeout,
                       std::chrono::system_clock::time_point now) {
  ProbeResult result;
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  auto down = [&](std::string why) {
    result.up = false;
    result.error = std::move(why);
    ERR_clear_error();
    return result;
  };

  auto fd = connectTcp(registry.hostname, registry.port, deadline);
  if (!fd) {
    return down(fd.error().message);
  }
  const std::string request = "GET /v2/ HTTP/1.1\r\nHost: " + registry.host +
                              "\r\nUser-Agent: k3s-mirror-agent/" + kVersion +
                              "\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  std::string response;

  if (registry.scheme == "http") {
    // Plain HTTP: write the request and read the status line, with the same deadline.
    size_t sent = 0;
    while (sent < request.size()) {
      if (!waitFor(fd.value().get(), POLLOUT, deadline)) {
        return down("send to " + registry.host + ": timed out");
      }
      const ssize_t n =
          ::send(fd.value().get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return down("send to " + registry.host + ": " + errnoText(errno));
      }
      sent += n > 0 ? static_cast<size_t>(n) : 0;
    }
    while (response.find("\r\n") == std::string::npos && response.size() < 4096) {
      if (!waitFor(fd.value().get(), POLLIN, deadline)) {
        return down("read from " + registry.host + ": timed out");
      }
      char buf[1024];
      const ssize_t n = ::recv(fd.value().get(), buf, sizeof buf, 0);
      if (n == 0) {
        break;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
          continue;
        }
        return down("read from " + registry.host + ": " + errnoText(errno));
      }
      response.append(buf, static_cast<size_t>(n));
    }
  } else {
    ERR_clear_error();
    SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) {
      return down("set up TLS: " + sslErrors());
    }
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    if (registry.insecure_skip_verify) {
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    } else {
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
      // The system's trust store and the configured CA, as containerd uses them.
      if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
        ERR_clear_error();  // no system store is not fatal when a CA is configured
      }
      if (!ca_pem.empty()) {
        if (auto added = addCaCertificates(SSL_CTX_get_cert_store(ctx.get()), ca_pem); !added) {
          return down(added.error().message);
        }
      }
    }
    SslPtr ssl(SSL_new(ctx.get()));
    if (!ssl || SSL_set_fd(ssl.get(), fd.value().get()) != 1) {
      return down("set up TLS: " + sslErrors());
    }
    if (isIpAddress(registry.hostname)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), registry.hostname.c_str());
    } else {
      // SSL_set_tlsext_host_name() is a macro with a C cast; this is what it expands to.
      SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(registry.hostname.c_str()));  // NOLINT: OpenSSL only reads it
      SSL_set1_host(ssl.get(), registry.hostname.c_str());
    }
    for (;;) {
      const int rc = SSL_connect(ssl.get());
      if (rc == 1) {
        break;
      }
      if (waitSsl(ssl.get(), rc, fd.value().get(), deadline)) {
        continue;
      }
      const long verify = SSL_get_verify_result(ssl.get());
      if (verify != X509_V_OK) {
        return down("TLS handshake with " + registry.host +
                    ": certificate verify failed: " + X509_verify_cert_error_string(verify));
      }
      if (msLeft(deadline) == 0) {
        return down("TLS handshake with " + registry.host + ": timed out");
      }
      return down("TLS handshake with " + registry.host + ": " + sslErrors());
    }
    if (X509* peer = SSL_get0_peer_certificate(ssl.get())) {
      int days = 0;
      int seconds = 0;
      // Whole days from now; negative once expired (possible with insecure_skip_verify).
      Owned<ASN1_TIME, ASN1_TIME_free> at(
          ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(now)));
      if (at && ASN1_TIME_diff(&days, &seconds, at.get(), X509_get0_notAfter(peer)) == 1) {
        result.certificate_days_left = days;
      }
    }
    size_t sent = 0;
    while (sent < request.size()) {
      size_t n = 0;
      const int rc = SSL_write_ex(ssl.get(), request.data() + sent, request.size() - sent, &n);
      if (rc == 1) {
        sent += n;
      } else if (!waitSsl(ssl.get(), rc, fd.value().get(), deadline)) {
        return down("send to " + registry.host + ": " + sslErrors());
      }
    }
    while (response.find("\r\n") == std::string::npos && response.size() < 4096) {
      char buf[1024];
      size_t n = 0;
      const int rc = SSL_read_ex(ssl.get(), buf, sizeof buf, &n);
      if (rc == 1) {
        response.append(buf, n);
      } else if (SSL_get_error(ssl.get(), rc) == SSL_ERROR_ZERO_RETURN) {
        break;
      } else if (!waitSsl(ssl.get(), rc, fd.value().get(), deadline)) {
        return down("read from " + registry.host + ": " +
                    (msLeft(deadline) == 0 ? std::string("timed out") : sslErrors()));
      }
    }
  }

  result.latency = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  result.http_status = statusCode(response);
  if (result.http_status == 0) {
    return down("GET /v2/ on " + registry.host + ": no HTTP response");
  }
  if (result.http_status != 200 && result.http_status != 401) {
    return down("GET /v2/ on " + registry.host + ": HTTP " + std::to_string(result.http_status) +
                " (a registry answers 200 or 401)");
  }
  result.up = true;
  ERR_clear_error();
  return result;
}

}  // namespace k3sma
