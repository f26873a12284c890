// libcurl wrapper for the Hub downloader (see http.h). Every request carries a connect timeout
// and a stall timeout (CURLOPT_LOW_SPEED_*), so a server that accepts a connection and then goes
// quiet, or announces more bytes than it sends, ends in a NetworkError rather than a hang.
#include "hub/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>

#include "hub/exit_codes.h"

namespace billion::hub {
namespace {

void ensure_curl_initialised() {
  // curl_global_init is not thread-safe, and downloads run on worker threads: do it once.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Transfer {
  const HttpRequest* request = nullptr;
  BodySink* sink = nullptr;
  size_t max_body = 0;
  HttpResponse response;
  long current_status = 0;
  HttpHeaders current_headers;
  bool delivered = false;     // on_response called for the final response
  bool to_sink = false;       // body goes to the sink (else to response.body)
  bool aborted_by_sink = false;
  bool body_too_large = false;

  // True when this response is a redirect that curl will follow itself.
  bool is_followed_redirect() const {
    return request->follow_redirects && current_status >= 300 && current_status < 400 &&
           current_headers.count("location");
  }
  void deliver() {
    if (delivered) return;
    delivered = true;
    response.status = current_status;
    response.headers = current_headers;
    to_sink = sink && sink->on_response && sink->on_response(current_status, current_headers);
  }
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * count);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response starts (after a redirect or a 100)
    t->current_headers.clear();
    auto sp = line.find(' ');
    t->current_status = sp == std::string::npos ? 0 : std::atol(line.c_str() + sp + 1);
    return size * count;
  }
  std::string stripped = trim(line);
  if (stripped.empty()) {  // end of this response's headers
    if (t->current_status >= 100 && t->current_status < 200) return size * count;
    if (!t->is_followed_redirect()) t->deliver();
    return size * count;
  }
  auto colon = stripped.find(':');
  if (colon != std::string::npos) {
    t->current_headers[lower(stripped.substr(0, colon))] = trim(stripped.substr(colon + 1));
  }
  return size * count;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  t->deliver();  // some servers end headers oddly; the first body byte settles it anyway
  t->response.body_bytes += n;
  if (t->to_sink) {
    if (!t->sink->on_data(data, n)) {
      t->aborted_by_sink = true;
      return 0;  // makes curl stop with CURLE_WRITE_ERROR
    }
    return n;
  }
  if (t->response.body.size() + n > t->max_body) {
    t->body_too_large = true;
    return 0;
  }
  t->response.body.append(data, n);
  return n;
}

bool is_transient(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
      return true;
    default:
      return false;
  }
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

HttpResponse http_request(const HttpRequest& request, BodySink* sink, size_t max_body) {
  ensure_curl_initialised();
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) throw NetworkError("cannot initialise libcurl", false, exit_code::kNetwork);
  CURL* c = curl.get();
  Transfer t;
  t.request = &request;
  t.sink = sink;
  t.max_body = max_body;

  curl_slist* raw_headers = nullptr;
  for (const auto& h : request.headers) raw_headers = curl_slist_append(raw_headers, h.c_str());
  // The Hub's sizes and sha256 are of the raw bytes: refuse transparent compression.
  raw_headers = curl_slist_append(raw_headers, "Accept-Encoding: identity");
  std::unique_ptr<curl_slist, SlistDeleter> header_list(raw_headers);

  char error_buffer[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, header_list.get());
  curl_easy_setopt(c, CURLOPT_USERAGENT, "billion-llm/" BILLION_VERSION);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // required for timeouts in threaded programs
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(request.timeouts.connect_s * 1000));
  if (request.timeouts.total_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeouts.total_s * 1000));
  // Stall detection: fewer than 1 byte/s for stall_s seconds aborts with CURLE_OPERATION_TIMEDOUT.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, std::max(1L, static_cast<long>(request.timeouts.stall_s + 0.5)));
  if (request.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  if (request.follow_redirects) {
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    // Never forward the Authorization header to another host (signed CDN URLs must not get it).
    curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
  }
  std::string range;
  if (request.range_start > 0) {
    range = std::to_string(request.range_start) + "-";
    curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  }
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);

  CURLcode code = curl_easy_perform(c);
  if (!t.delivered && t.current_status != 0 && !t.is_followed_redirect()) t.deliver();
  char* effective = nullptr;
  curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &effective);
  if (effective) t.response.effective_url = effective;
  if (code == CURLE_OK) return std::move(t.response);

  if (code == CURLE_WRITE_ERROR && t.aborted_by_sink) {
    // The sink refused data: it keeps its own reason; report the status so it can decide.
    throw NetworkError(request.url + ": transfer stopped by the receiver", false, exit_code::kNetwork);
  }
  if (code == CURLE_WRITE_ERROR && t.body_too_large) {
    throw NetworkError(request.url + ": answer larger than " + std::to_string(max_body) + " bytes", false,
                       exit_code::kNetwork);
  }
  std::string detail = error_buffer[0] ? error_buffer : curl_easy_strerror(code);
  if (code == CURLE_TOO_MANY_REDIRECTS) detail = "too many redirects (a redirect loop?)";
  if (code == CURLE_OPERATION_TIMEDOUT) {
    detail = "timed out (no data for " + std::to_string(static_cast<int>(request.timeouts.stall_s)) + " s: " + detail + ")";
  }
  throw NetworkError(request.url + ": " + detail, is_transient(code), exit_code::kNetwork);
}

std::string url_quote(const std::string& text, const std::string& safe) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : text) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~' || safe.find(static_cast<char>(ch)) != std::string::npos) {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

std::string url_host(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  auto start = scheme + 3;
  auto end = url.find_first_of("/?#", start);
  std::string host = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  auto at = host.rfind('@');  // drop user-info
  if (at != std::string::npos) host = host.substr(at + 1);
  return lower(host);
}

std::string link_next(const std::string& link_header) {
  // Link: <https://x/api/...?cursor=abc>; rel="next", <...>; rel="prev"
  size_t pos = 0;
  while (pos < link_header.size()) {
    auto open = link_header.find('<', pos);
    if (open == std::string::npos) break;
    auto close = link_header.find('>', open);
    if (close == std::string::npos) break;
    auto next_entry = link_header.find('<', close);
    std::string params = link_header.substr(close + 1, next_entry == std::string::npos ? std::string::npos : next_entry - close - 1);
    std::string p = lower(params);
    if (p.find("rel=\"next\"") != std::string::npos || p.find("rel=next") != std::string::npos) {
      return link_header.substr(open + 1, close - open - 1);
    }
    pos = close + 1;
  }
  return "";
}

}  // namespace billion::hub
