// ProxyRules: the framing decision and the hop-by-hop rules, one case each.
#include <gtest/gtest.h>

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string>
#include <string_view>

#include "ringlb/proxy_rules.hpp"

namespace {

namespace http = boost::beast::http;
using ringlb::ProxyRules;

// Parses a request header with Beast as the router does and applies check_request.
// Returns "ok", the rejection's "<status> <message>", or "parser: <error>".
std::string verdict(std::string_view raw) {
    http::request_parser<http::string_body> p;
    p.eager(false);
    boost::beast::error_code ec;
    p.put(boost::asio::buffer(raw.data(), raw.size()), ec);
    if (ec && ec != http::error::need_more) return "parser: " + ec.message();
    if (!p.is_header_done()) return "incomplete";
    const auto r = ProxyRules::check_request(p.get().base(), p.chunked());
    return r ? std::to_string(r->status) + " " + r->message : "ok";
}

TEST(ProxyRules, PlainRequestsPass) {
    EXPECT_EQ(verdict("GET /home HTTP/1.1\r\nHost: x\r\n\r\n"), "ok");
    EXPECT_EQ(verdict("POST /home HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"), "ok");
    EXPECT_EQ(verdict("POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"), "ok");
    EXPECT_EQ(verdict("GET /home HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Foo\r\n\r\n"),
              "ok");
    // HTTP/1.0 has no Host requirement.
    EXPECT_EQ(verdict("GET /home HTTP/1.0\r\n\r\n"), "ok");
}

TEST(ProxyRules, HostIsRequiredOnceInHttp11) {
    EXPECT_EQ(verdict("GET /home HTTP/1.1\r\n\r\n"),
              "400 an HTTP/1.1 request needs a Host header field");
    EXPECT_EQ(verdict("GET /home HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
              "400 several Host header fields");
    EXPECT_EQ(verdict("GET /home HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
              "400 several Host header fields");
}

// RFC 9112 §3.2. "zz:]" was found by fuzz/fuzz_request: Boost.URL 1.81
// asserts on it, so it must be refused before Boost.URL is asked.
TEST(ProxyRules, TheTargetIsAPathAnHttpUriOrAnAsteriskForOptions) {
    const std::string refused =
        "400 the request target must be a path (/...), an http(s) URI with a host, or * for "
        "OPTIONS";
    EXPECT_EQ(verdict("GET http://lb:5000/a?b HTTP/1.1\r\nHost: lb\r\n\r\n"), "ok");
    EXPECT_EQ(verdict("GET HTTPS://lb HTTP/1.1\r\nHost: lb\r\n\r\n"), "ok");
    EXPECT_EQ(verdict("OPTIONS * HTTP/1.1\r\nHost: lb\r\n\r\n"), "ok");
    for (const char* target : {"zz:]", "home", "*", "ftp://lb/a", "http:///a", "http://",
                               "lb:443", "http://lb/]", "http:lb"}) {
        EXPECT_EQ(verdict("GET " + std::string(target) + " HTTP/1.0\r\n\r\n"), refused)
            << target;
    }
    EXPECT_EQ(verdict("CONNECT lb:443 HTTP/1.1\r\nHost: lb:443\r\n\r\n"), refused);
}

TEST(ProxyRules, ContentLengthOnceAndNeverWithTransferEncoding) {
    // Beast refuses two different lengths itself; two equal ones reach the rule.
    EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"),
              "400 several Content-Length header fields");
    const std::string both = verdict(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    EXPECT_TRUE(both.rfind("400 ", 0) == 0 || both.rfind("parser: ", 0) == 0) << both;
    EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
              "400 Transfer-Encoding must end in chunked");
}

TEST(ProxyRules, ConnectionMayNotNameAFramingField) {
    // The smuggling shape: stripping Content-Length while forwarding its body.
    EXPECT_EQ(verdict("POST /home HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\n"
                      "Content-Length: 35\r\n\r\n"),
              "400 the Connection header field may not name 'content-length': it frames the "
              "request");
    EXPECT_EQ(verdict("GET / HTTP/1.1\r\nHost: x\r\nConnection: close, Host\r\n\r\n"),
              "400 the Connection header field may not name 'Host': it frames the request");
    EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                      "Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"),
              "400 the Connection header field may not name 'Transfer-Encoding': it frames the "
              "request");
}

TEST(ProxyRules, HeaderSizeCountsEveryByte) {
    EXPECT_FALSE(ProxyRules::check_header_size(8192, 8192));
    const auto r = ProxyRules::check_header_size(8193, 8192);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 431u);
    EXPECT_EQ(r->message, "request header is larger than 8192 bytes");
}

TEST(ProxyRules, StripRemovesEveryConnectionFieldAndWhatTheyName) {
    http::fields f;
    f.insert(http::field::connection, "X-A");
    f.insert(http::field::connection, "x-b, keep-alive");
    f.insert("X-A", "1");
    f.insert("X-B", "2");
    f.insert("X-C", "3");
    f.insert(http::field::keep_alive, "timeout=5");
    f.insert(http::field::upgrade, "h2c");
    f.insert(http::field::content_length, "0");
    EXPECT_TRUE(ProxyRules::scan(f).hop_by_hop);
    EXPECT_TRUE(ProxyRules::scan(f).content_length);
    ProxyRules::strip_hop_by_hop(f);
    std::string left;
    for (const auto& e : f) left += std::string(e.name_string()) + ";";
    EXPECT_EQ(left, "X-C;Content-Length;");
    EXPECT_FALSE(ProxyRules::scan(f).hop_by_hop);
}

// Found by fuzz/fuzz_request: an HTTP/1.0 request may come without Host, and
// the router forwarded it as HTTP/1.1 without Host, which HTTP/1.1 servers
// must answer with 400 (RFC 9112 §3.2) and which the router itself refuses.
TEST(ProxyRules, EnsureHostGivesAForwardedRequestTheHostHttp11Needs) {
    const auto host_after = [](std::string_view target, const char* host = nullptr) {
        http::request_header<http::fields> h;
        h.version(10);
        h.target(target);
        if (host) h.set(http::field::host, host);
        ProxyRules::ensure_host(h);
        EXPECT_EQ(h.count(http::field::host), 1u) << target;
        return std::string(h[http::field::host]);
    };
    EXPECT_EQ(host_after("/home"), "");
    EXPECT_EQ(host_after("*"), "");
    EXPECT_EQ(host_after("zz:]"), "");  // not absolute-form: Boost.URL is not asked
    EXPECT_EQ(host_after("http://lb:5000/home?x=1"), "lb:5000");
    EXPECT_EQ(host_after("http://user:pw@[::1]:80/"), "[::1]:80");
    EXPECT_EQ(host_after("/home", "given"), "given");
}

TEST(ProxyRules, ForwardedFieldsAppendTheClientAndReplaceWhatAClientCouldClaim) {
    const auto forwarded = [](std::string_view raw) {
        http::request_parser<http::string_body> p;
        boost::beast::error_code ec;
        p.put(boost::asio::buffer(raw.data(), raw.size()), ec);
        EXPECT_TRUE(p.is_header_done()) << ec.message();
        auto h = p.release().base();
        ProxyRules::add_forwarded(h, "10.0.0.9");
        EXPECT_EQ(h.count("X-Forwarded-For"), 1u);
        EXPECT_EQ(h.count("X-Forwarded-Proto"), 1u);
        return std::string(h["X-Forwarded-For"]) + " | " + std::string(h["X-Forwarded-Proto"]) +
               " | " + std::string(h["X-Forwarded-Host"]) + " | " + std::string(h["Host"]);
    };
    EXPECT_EQ(forwarded("GET / HTTP/1.1\r\nHost: lb:5000\r\n\r\n"),
              "10.0.0.9 | http | lb:5000 | lb:5000");
    EXPECT_EQ(forwarded("GET / HTTP/1.1\r\nHost: lb\r\nX-Forwarded-For: 1.1.1.1\r\n"
                        "x-forwarded-for: 2.2.2.2, 3.3.3.3\r\nX-Forwarded-Proto: https\r\n"
                        "X-Forwarded-Host: evil\r\n\r\n"),
              "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9 | http | lb | lb");
    // HTTP/1.0 without Host: no X-Forwarded-Host, and a client's is not kept.
    EXPECT_EQ(forwarded("GET / HTTP/1.0\r\nX-Forwarded-Host: evil\r\n\r\n"),
              "10.0.0.9 | http |  | ");
}

// Found by fuzz/fuzz_upstream_response: Beast accepts a replica's
// "Content-Length: 3, 3" or the field twice with equal values, and the
// router forwarded them as they were, a framing RFC 9110 §8.6 calls invalid
// (a proxy sends the single value instead) and strict clients refuse.
TEST(ProxyRules, ScanTellsARepeatedContentLengthFromAPlainOne) {
    const auto scan_of = [](std::initializer_list<const char*> lengths) {
        http::fields f;
        for (const char* v : lengths) f.insert(http::field::content_length, v);
        const auto s = ProxyRules::scan(f);
        return std::string(s.content_length ? "plain" : "") + (s.odd_content_length ? "odd" : "");
    };
    EXPECT_EQ(scan_of({}), "");
    EXPECT_EQ(scan_of({"3"}), "plain");
    EXPECT_EQ(scan_of({"0"}), "plain");
    EXPECT_EQ(scan_of({"3, 3"}), "odd");
    EXPECT_EQ(scan_of({"3", "3"}), "odd");
    EXPECT_EQ(scan_of({""}), "odd");
}

// Found by fuzz/fuzz_upstream_response: a replica's "HTTP/1.1 004 ..." was
// passed on header-only (below 200: no body, for the router) without a
// length, and the client, for which 004 has a body, waited for one.
TEST(ProxyRules, StatusCodesOutside100To599AreInvalid) {
    for (unsigned ok : {100u, 101u, 199u, 200u, 404u, 599u}) EXPECT_TRUE(ProxyRules::valid_status(ok)) << ok;
    for (unsigned bad : {0u, 4u, 99u, 600u, 999u}) EXPECT_FALSE(ProxyRules::valid_status(bad)) << bad;
}

// Found by fuzz/fuzz_request: "Transfer-Encoding: x" then "Transfer-Encoding:
// chunked" passed (the parser's verdict is chunked), but do_route asked the
// message, which reads only the first field, whether the body was chunked:
// it stripped both fields and set no Content-Length, so the decoded body went
// to the replica unframed, where it is the next request (request smuggling).
TEST(ProxyRules, OnlyAPlainChunkedTransferEncodingPasses) {
    EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"), "ok");
    EXPECT_EQ(verdict("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"), "ok");
    for (const char* te : {"Transfer-Encoding: gzip, chunked\r\n",
                           "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                           "Transfer-Encoding: chunkedost: lb\r\nTransfer-Encoding: chunked\r\n"}) {
        EXPECT_EQ(verdict(std::string("POST / HTTP/1.1\r\nHost: x\r\n") + te + "\r\n"),
                  "501 no transfer coding but chunked is supported")
            << te;
    }
}

TEST(ProxyRules, Idempotency) {
    EXPECT_TRUE(ProxyRules::idempotent(http::verb::get));
    EXPECT_TRUE(ProxyRules::idempotent(http::verb::put));
    EXPECT_TRUE(ProxyRules::idempotent(http::verb::delete_));
    EXPECT_FALSE(ProxyRules::idempotent(http::verb::post));
    EXPECT_FALSE(ProxyRules::idempotent(http::verb::patch));
}

}  // namespace
