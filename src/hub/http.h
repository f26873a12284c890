// Minimal HTTPS client over libcurl for the Hub downloader: one request per call, headers of
// the final response, a streaming body sink, and timeouts on everything so that a silent or
// lying server produces an error instead of a hang. Thread-safe (one easy handle per call).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace billion::hub {

// Response header names are case-insensitive; they are stored lower-cased (last value wins).
using HttpHeaders = std::map<std::string, std::string>;

struct HttpTimeouts {
  double connect_s = 10;  // TCP + TLS handshake
  double stall_s = 10;    // no byte received for this long (waiting for headers included) → abort
  double total_s = 0;     // whole request, 0 = unlimited (downloads of multi-GB files)
};

struct HttpRequest {
  std::string method = "GET";  // GET or HEAD
  std::string url;
  std::vector<std::string> headers;  // "Name: value"; may hold the token, so never logged
  bool follow_redirects = false;     // true: curl follows up to 10 (loops end in an error)
  uint64_t range_start = 0;          // > 0: sends "Range: bytes=N-"
  HttpTimeouts timeouts;
};

struct HttpResponse {
  long status = 0;
  HttpHeaders headers;      // of the final response only
  std::string body;         // small bodies (API answers, error pages), capped
  std::string effective_url;
  uint64_t body_bytes = 0;  // bytes received for the body (sinks included)
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Streaming receiver for large bodies. on_response sees the final status and headers before
// any body byte; returning false keeps the body in HttpResponse::body (an error page) instead.
struct BodySink {
  std::function<bool(long status, const HttpHeaders& headers)> on_response;
  // Returns false to abort the transfer (the caller records why).
  std::function<bool(const char* data, size_t size)> on_data;
};

// A failure below HTTP (DNS, connect, reset, timeout, truncated body, too many redirects).
// transient() says whether trying again may help.
class NetworkError : public Error {
 public:
  NetworkError(const std::string& message, bool transient, int exit_code)
      : Error(message, exit_code), transient_(transient) {}
  bool transient() const { return transient_; }

 private:
  bool transient_;
};

// Performs one request. Throws NetworkError for transport failures; HTTP error statuses are
// returned, not thrown (the caller maps them to messages). max_body caps HttpResponse::body.
HttpResponse http_request(const HttpRequest& request, BodySink* sink = nullptr, size_t max_body = 64u << 20);

// Percent-encodes every byte except unreserved characters and those in `safe`.
std::string url_quote(const std::string& text, const std::string& safe = "");

// "https://host:port/path" → "host:port" (lower-cased), for the same-host checks.
std::string url_host(const std::string& url);

// Parses the "next" target of an RFC 8288 Link header (pagination), or "".
std::string link_next(const std::string& link_header);

}  // namespace billion::hub
