#include "ringlb/proxy_rules.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/rfc7230.hpp>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <string_view>

namespace ringlb {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

Rejection bad(std::string message) { return {400, std::move(message)}; }

// RFC 9110 §7.6.1's hop-by-hop fields, plus Transfer-Encoding (the parser has
// decoded any chunking) and Expect (the body is already here): what a proxy
// must not pass on. One list, for scan() and strip_hop_by_hop().
constexpr http::field hop_by_hop_fields[] = {
    http::field::connection, http::field::keep_alive, http::field::proxy_connection,
    http::field::te,         http::field::trailer,    http::field::upgrade,
    http::field::transfer_encoding, http::field::expect};

// RFC 9112 §3.2.2: the absolute-form a reverse proxy is sent is an http(s)
// URI, which RFC 9110 §4.2 says has a non-empty host. The scheme and "://"
// are checked before Boost.URL sees the target: Boost 1.81's hier-part rule
// asserts on a rootless path such as "zz:]" (found by fuzz_request), and
// with "://" only the authority branch, which is sound, is taken.
std::optional<boost::urls::url_view> absolute_form(std::string_view target) {
    const std::size_t colon = target.find("://");
    if (colon == target.npos) return std::nullopt;
    const std::string_view scheme = target.substr(0, colon);
    if (!beast::iequals(scheme, "http") && !beast::iequals(scheme, "https")) return std::nullopt;
    auto uri = boost::urls::parse_absolute_uri(target);
    if (!uri || !uri->has_authority() || uri->encoded_host().empty()) return std::nullopt;
    return *uri;
}

bool is_hop_by_hop(http::field f) noexcept {
    for (const auto h : hop_by_hop_fields) {
        if (f == h) return true;
    }
    return false;
}

}  // namespace

template <class Fields>
std::optional<Rejection> ProxyRules::check_request(const http::request_header<Fields>& h,
                                                   bool chunked) {
    // RFC 9112 §3.2: origin-form, absolute-form, or "*" for OPTIONS. A
    // reverse proxy has no use for the authority-form (CONNECT), and any
    // other target is not HTTP: it would reach the key source and the
    // replica as is.
    const std::string_view target = h.target();
    const bool asterisk = target == "*" && h.method() == http::verb::options;
    if (!target.starts_with('/') && !asterisk && !absolute_form(target)) {
        return bad("the request target must be a path (/...), an http(s) URI with a host, "
                   "or * for OPTIONS");
    }
    const std::size_t hosts = h.count(http::field::host);
    if (hosts == 0 && h.version() >= 11) return bad("an HTTP/1.1 request needs a Host header field");
    if (hosts > 1) return bad("several Host header fields");
    const std::size_t lengths = h.count(http::field::content_length);
    if (lengths > 1) return bad("several Content-Length header fields");
    const bool has_te = h.count(http::field::transfer_encoding) > 0;
    if (has_te && lengths > 0) {
        return bad("Content-Length and Transfer-Encoding together: the length is ambiguous");
    }
    // RFC 9112 §6.3: a request whose last transfer coding is not chunked has
    // no knowable length (else we would wait for an end of stream).
    if (has_te && !chunked) return bad("Transfer-Encoding must end in chunked");
    // RFC 9112 §6.1: the router decodes chunked and nothing else, and passes
    // the body on without Transfer-Encoding, so any other coding ("gzip,
    // chunked", or a field before the one that says chunked) would reach the
    // replica still applied and unannounced; 501 is what a server SHOULD answer.
    if (has_te) {
        const auto te = h.find(http::field::transfer_encoding);
        if (h.count(http::field::transfer_encoding) > 1 || !beast::iequals(te->value(), "chunked")) {
            return Rejection{501, "no transfer coding but chunked is supported"};
        }
    }
    const auto [first, last] = h.equal_range(http::field::connection);
    for (auto it = first; it != last; ++it) {
        for (const auto token : http::token_list(it->value())) {
            const std::string_view t(token.data(), token.size());
            if (beast::iequals(t, "host") || beast::iequals(t, "content-length") ||
                beast::iequals(t, "transfer-encoding")) {
                return bad("the Connection header field may not name '" + std::string(t) +
                           "': it frames the request");
            }
        }
    }
    return std::nullopt;
}

std::optional<Rejection> ProxyRules::check_header_size(std::size_t header_bytes,
                                                       std::size_t max_header_bytes) {
    if (header_bytes <= max_header_bytes) return std::nullopt;
    return Rejection{431, "request header is larger than " + std::to_string(max_header_bytes) +
                              " bytes"};
}

template <class Fields>
FieldScan ProxyRules::scan(const Fields& f) noexcept {
    FieldScan s;
    std::size_t lengths = 0;
    bool plain = true;
    for (const auto& e : f) {
        if (e.name() == http::field::content_length) {
            ++lengths;
            const std::string_view v = e.value();
            plain = plain && !v.empty() && v.find_first_not_of("0123456789") == v.npos;
        } else if (is_hop_by_hop(e.name())) {
            s.hop_by_hop = true;
        }
    }
    s.content_length = lengths == 1 && plain;
    s.odd_content_length = lengths > 0 && !s.content_length;
    return s;
}

template <class Fields>
void ProxyRules::strip_hop_by_hop(Fields& f) {
    // Every Connection field counts, not just the first: the names are
    // collected before any field goes, since erasing invalidates the values.
    std::string listed;
    const auto [first, last] = f.equal_range(http::field::connection);
    for (auto it = first; it != last; ++it) {
        listed.append(it->value());
        listed.push_back(',');
    }
    for (const auto token : http::token_list(listed)) f.erase(token);
    for (const auto name : hop_by_hop_fields) f.erase(name);
}

template <class Fields>
void ProxyRules::ensure_host(http::request_header<Fields>& h) {
    if (h.count(http::field::host) > 0) return;
    // A copy: Boost.URL is given a string of its own, not a view into the fields.
    const std::string target(h.target());
    std::string authority;
    if (const auto uri = absolute_form(target)) authority = uri->encoded_host_and_port();
    h.set(http::field::host, authority);
}

template <class Fields>
void ProxyRules::add_forwarded(http::request_header<Fields>& h, std::string_view client_ip) {
    std::string chain;
    const auto [first, last] = h.equal_range("X-Forwarded-For");
    for (auto it = first; it != last; ++it) {
        chain.append(it->value());
        chain.append(", ");
    }
    chain.append(client_ip);
    h.set("X-Forwarded-For", chain);
    h.set("X-Forwarded-Proto", "http");
    if (const auto host = h.find(http::field::host); host != h.end() && !host->value().empty()) {
        h.set("X-Forwarded-Host", std::string(host->value()));
    } else {
        h.erase("X-Forwarded-Host");
    }
}

template <class Fields>
std::string ProxyRules::upgrade_requested(const http::request_header<Fields>& h) {
    if (h.version() < 11) return {};  // RFC 9110 §7.8: ignored in HTTP/1.0
    const auto upgrade = h.find(http::field::upgrade);
    if (upgrade == h.end() || upgrade->value().empty()) return {};
    const auto [first, last] = h.equal_range(http::field::connection);
    for (auto it = first; it != last; ++it) {
        if (http::token_list(it->value()).exists("upgrade")) return std::string(upgrade->value());
    }
    return {};
}

bool ProxyRules::idempotent(http::verb v) noexcept {
    switch (v) {
        case http::verb::get:
        case http::verb::head:
        case http::verb::options:
        case http::verb::put:
        case http::verb::delete_:
        case http::verb::trace:
            return true;
        default:
            return false;
    }
}

RINGLB_PROXY_RULES_FOR(boost::beast::http::fields, )
RINGLB_PROXY_RULES_FOR(ArenaFields, )

}  // namespace ringlb
