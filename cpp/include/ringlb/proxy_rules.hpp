// ProxyRules: what the router decides about a message from its parsed header
// alone, apart from any I/O, so that each rule is unit-tested and fuzzed.
//
// Framing is decided once, on the header as the client sent it and before
// any field is removed: a request whose length could be read two ways (by us
// and by the replica behind us) is refused, never forwarded. This is what
// closes request smuggling: a proxy that strips Content-Length because
// `Connection` named it, yet forwards the body, hands the replica a second
// request hidden in the first one's body (RFC 9112 §6.3, §11.2).
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/verb.hpp>

#include <cstddef>
#include <optional>
#include <string>

#include "ringlb/field_arena.hpp"

namespace ringlb {

// A request the router answers itself with `status` and the SPEC's error
// shape ("<Error> " + message), then closes the connection.
struct Rejection {
    unsigned status;
    std::string message;
};

// What one pass over a message's fields tells the proxy: most messages carry
// none of the fields it must rewrite, and then it does not look again.
struct FieldScan {
    bool hop_by_hop = false;  // a field that concerns only one hop, or Expect
    // One Content-Length field, a plain decimal: forwarded as it is.
    bool content_length = false;
    // Content-Length twice, or as a list ("3, 3"): Beast accepts equal
    // values, RFC 9110 §8.6 has a proxy send one value instead.
    bool odd_content_length = false;
};

class ProxyRules {
public:
    // RFC 9112 §3.2, §6.1, §6.3 and RFC 9110 §7.6.1, as HAProxy applies them:
    //   - a request target that is not a path, an http(s) URI with a host,
    //     or "*" with OPTIONS;
    //   - an HTTP/1.1 request without Host, or with several Host fields;
    //   - several Content-Length fields, even equal ones;
    //   - Content-Length together with Transfer-Encoding;
    //   - a Transfer-Encoding whose last coding is not chunked (`chunked` is
    //     the parser's verdict);
    //   - 501: a Transfer-Encoding that is anything but one "chunked" (the
    //     router decodes no other coding);
    //   - a Connection field that names Host, Content-Length or
    //     Transfer-Encoding (stripping those would change the framing).
    // Fields: http::fields or ArenaFields (instantiated in proxy_rules.cpp).
    template <class Fields>
    static std::optional<Rejection> check_request(
        const boost::beast::http::request_header<Fields>& header, bool chunked);

    // The header block (request line, fields, their CRLFs and the blank line)
    // is `header_bytes` long; the limit is counted in exactly those bytes.
    static std::optional<Rejection> check_header_size(std::size_t header_bytes,
                                                      std::size_t max_header_bytes);

    template <class Fields>
    static FieldScan scan(const Fields& fields) noexcept;

    // RFC 9110 §7.6.1: the Connection fields, every field they name, and the
    // classic hop-by-hop list; the parser has removed any chunked coding, so
    // Transfer-Encoding goes too (the caller sets Content-Length), and so does
    // Expect (the body is already here).
    template <class Fields>
    static void strip_hop_by_hop(Fields& fields);

    // The router forwards every request as HTTP/1.1, which needs Host (RFC
    // 9112 §3.2) where HTTP/1.0 does not. A request without Host gets the
    // authority of its absolute-form target, else an empty value (what a
    // client sends when the target has no authority). No-op when Host is there.
    template <class Fields>
    static void ensure_host(boost::beast::http::request_header<Fields>& header);

    // The de facto proxy fields, as nginx's $proxy_add_x_forwarded_for and
    // HAProxy's "option forwardfor" write them: X-Forwarded-For gets the
    // client's address appended (every earlier field folded into one list,
    // so the replica reads one value), X-Forwarded-Proto is "http" and
    // X-Forwarded-Host the Host the client sent; those two are replaced, as
    // a client could claim anything in them. Host itself goes on as sent.
    template <class Fields>
    static void add_forwarded(boost::beast::http::request_header<Fields>& header,
                              std::string_view client_ip);

    // RFC 9110 §7.8: the protocol an HTTP/1.1 request asks to switch to (its
    // Upgrade field, when a Connection field names "upgrade"), or empty.
    // Read before strip_hop_by_hop() removes both; the caller puts them back
    // for the replica.
    template <class Fields>
    static std::string upgrade_requested(const boost::beast::http::request_header<Fields>& header);

    // RFC 9110 §15: a status code is 100..599; Beast's parser reads any three
    // digits. An answer outside that range is treated as a 5xx (the router
    // answers 502): passed on, "004" would lose its body (below 200 means
    // none for the router) while the client waits for one.
    static bool valid_status(unsigned status) noexcept { return status >= 100 && status <= 599; }

    // RFC 9110 §9.2.2: a request that may be repeated after a failed try.
    static bool idempotent(boost::beast::http::verb method) noexcept;
};

#define RINGLB_PROXY_RULES_FOR(Fields, extern_)                                                   \
    extern_ template std::optional<Rejection> ProxyRules::check_request<Fields>(                  \
        const boost::beast::http::request_header<Fields>&, bool);                                 \
    extern_ template FieldScan ProxyRules::scan<Fields>(const Fields&) noexcept;                  \
    extern_ template void ProxyRules::strip_hop_by_hop<Fields>(Fields&);                         \
    extern_ template void ProxyRules::ensure_host<Fields>(                                        \
        boost::beast::http::request_header<Fields>&);                                             \
    extern_ template void ProxyRules::add_forwarded<Fields>(                                      \
        boost::beast::http::request_header<Fields>&, std::string_view);                           \
    extern_ template std::string ProxyRules::upgrade_requested<Fields>(                           \
        const boost::beast::http::request_header<Fields>&);
RINGLB_PROXY_RULES_FOR(boost::beast::http::fields, extern)
RINGLB_PROXY_RULES_FOR(ArenaFields, extern)

}  // namespace ringlb
