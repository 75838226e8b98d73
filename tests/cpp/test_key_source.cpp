#include <gtest/gtest.h>

#include <boost/beast/http/fields.hpp>

#include <set>
#include <stdexcept>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include "ringlb/hash_schemes.hpp"
#include "ringlb/key_source.hpp"

namespace {

namespace http = boost::beast::http;
using ringlb::KeySource;

std::optional<std::string> key_of(const char* spec, const http::fields& f, std::string_view target,
                                  std::string_view ip = "10.0.0.7") {
    std::string scratch;
    auto k = KeySource(spec).key(f, target, ip, scratch);
    return k ? std::optional<std::string>(std::string(*k)) : std::nullopt;
}

TEST(KeySource, ParsesEverySpec) {
    EXPECT_EQ(KeySource("random").kind(), KeySource::Kind::random);
    EXPECT_EQ(KeySource("path").kind(), KeySource::Kind::path);
    EXPECT_EQ(KeySource("client-ip").kind(), KeySource::Kind::client_ip);
    EXPECT_EQ(KeySource("header:X-User").kind(), KeySource::Kind::header);
    EXPECT_EQ(KeySource("header:X-User").name(), "X-User");
    EXPECT_EQ(KeySource("query:id").spec(), "query:id");
    EXPECT_EQ(KeySource("cookie:sid").spec(), "cookie:sid");
}

TEST(KeySource, RejectsBadSpecs) {
    for (const char* bad : {"", "Random", "header:", "query:", "cookie:", "header:a b",
                            "header:a:b", "cookie:a=b", "cookie:a;b", "query:%zz", "ip",
                            "path:x", "client-ip:x"}) {
        EXPECT_THROW(KeySource{bad}, std::invalid_argument) << bad;
    }
}

TEST(KeySource, RandomHasNoKeyAndDrawsSixDigitIds) {
    http::fields f;
    EXPECT_FALSE(key_of("random", f, "/home?id=5"));
    std::mt19937_64 rng(42);
    std::string scratch;
    std::set<std::uint64_t> seen;
    for (int i = 0; i < 10000; ++i) {
        const auto id = KeySource("random").request_id(f, "/home", "", rng, scratch);
        ASSERT_GE(id, 100000u);
        ASSERT_LE(id, 999999u);
        seen.insert(id);
    }
    EXPECT_GT(seen.size(), 9900u);
}

TEST(KeySource, Header) {
    http::fields f;
    f.set("X-User", "  alice ");
    EXPECT_EQ(key_of("header:x-user", f, "/"), "alice");  // names are case-insensitive
    EXPECT_FALSE(key_of("header:X-Other", f, "/"));
}

TEST(KeySource, Query) {
    http::fields f;
    EXPECT_EQ(key_of("query:id", f, "/home?id=123456"), "123456");
    EXPECT_EQ(key_of("query:id", f, "/home?x=1&id=42&id=43"), "42");  // the first one
    EXPECT_EQ(key_of("query:user", f, "/home?user=a%20b%2Fc"), "a b/c");
    EXPECT_EQ(key_of("query:id", f, "/home?id="), "");
    EXPECT_EQ(key_of("query:id", f, "/home?id=7#frag"), "7");
    EXPECT_FALSE(key_of("query:id", f, "/home?ids=1"));
    EXPECT_FALSE(key_of("query:id", f, "/home"));
    EXPECT_FALSE(key_of("query:id", f, "/home?id"));       // no value
    EXPECT_FALSE(key_of("query:id", f, "/home?id=%zz"));  // not a valid query
    EXPECT_EQ(key_of("query:id", f, "http://example.com/home?id=9"), "9");  // absolute form
    // The target is a view into a larger buffer: nothing past its end is read.
    const std::string buffer = "/home?a=1&id=77SURPLUS";
    EXPECT_EQ(key_of("query:id", f, std::string_view(buffer).substr(0, 15)), "77");
    EXPECT_EQ(key_of("query:id", f, std::string_view(buffer).substr(0, 13)), "");
}

// The reference: what Boost.URL makes of "?query" (the router's slow path).
std::optional<std::string> boost_url_value(std::string_view query, std::string_view name) {
    std::string ref(1, '?');
    ref.append(query.data(), query.size());
    const auto parsed = boost::urls::parse_relative_ref(ref);
    if (!parsed) return std::nullopt;
    const auto params = parsed->encoded_params();
    const auto it = params.find(boost::urls::pct_string_view(name));
    if (it == params.end() || !(*it).has_value) return std::nullopt;
    return (*it).value.decode();
}

TEST(KeySource, QueryFastPathAgreesWithBoostUrl) {
    // Random queries over an alphabet rich in separators, escapes and
    // characters that are not allowed in a query.
    const std::string alphabet = "id=&=&id%20%2Fxa+b;:/?@[] \"^{}<>!$'()*,-._~";
    std::mt19937_64 rng(2024);
    http::fields f;
    for (int i = 0; i < 20000; ++i) {
        std::string q;
        const int len = static_cast<int>(rng() % 24);
        for (int k = 0; k < len; ++k) q += alphabet[rng() % alphabet.size()];
        if (rng() % 3 == 0) q.insert(0, "id=");
        const auto expected = boost_url_value(q, "id");
        const auto got = key_of("query:id", f, "/p?" + q);
        ASSERT_EQ(got, expected) << "query: " << q;
    }
}

// Found by fuzz/fuzz_key_source: a NAME with percent-escapes matched only in
// queries that had escapes too (Boost.URL's path compares decoded names, the
// escape-free fast path compared the raw NAME), so the same key went to
// different replicas depending on the rest of the query.
TEST(KeySource, QueryNameWithEscapesMatchesWhetherOrNotTheQueryHasEscapes) {
    http::fields f;
    EXPECT_EQ(key_of("query:a%62", f, "/?ab=1"), "1");
    EXPECT_EQ(key_of("query:a%62", f, "/?ab=1&x=%20"), "1");
    EXPECT_EQ(key_of("query:a%62", f, "/?a%62=1"), "1");
    EXPECT_EQ(key_of("query:ab", f, "/?a%62=1"), "1");
    EXPECT_EQ(KeySource("query:a%62").spec(), "query:a%62");  // the spec keeps its spelling
    for (const char* q : {"ab=1", "ab=1&x=%20", "x=1&ab", "a%62=2&ab=1", "a%2562=1"}) {
        EXPECT_EQ(key_of("query:a%62", f, std::string("/p?") + q), boost_url_value(q, "a%62")) << q;
    }
}

TEST(KeySource, Cookie) {
    http::fields f;
    f.insert(http::field::cookie, "theme=dark; sid=abc123");
    f.insert(http::field::cookie, "other=1; sid2=zz");
    EXPECT_EQ(key_of("cookie:sid", f, "/"), "abc123");
    EXPECT_EQ(key_of("cookie:other", f, "/"), "1");  // a second Cookie field
    EXPECT_FALSE(key_of("cookie:nope", f, "/"));
    EXPECT_EQ(KeySource::cookie_value("a=1;b=\"q v\"; c", "b"), "q v");
    EXPECT_EQ(KeySource::cookie_value(" a = 1 ", "a"), "1");
    EXPECT_FALSE(KeySource::cookie_value("ab=1", "a"));
    EXPECT_FALSE(KeySource::cookie_value("", "a"));
    EXPECT_FALSE(KeySource::cookie_value(";;;", "a"));
}

TEST(KeySource, PathAndClientIp) {
    http::fields f;
    EXPECT_EQ(key_of("path", f, "/a/b?c=d"), "/a/b");
    EXPECT_EQ(key_of("path", f, "/"), "/");
    EXPECT_EQ(key_of("client-ip", f, "/", "192.0.2.1"), "192.0.2.1");
    EXPECT_EQ(KeySource::path_of("/x#y"), "/x");
}

TEST(KeySource, RequestIdIsTheKeysIdOrItsHash) {
    http::fields f;
    f.set("X-Key", "alice");
    std::mt19937_64 rng(1);
    std::string scratch;
    EXPECT_EQ(KeySource("query:id").request_id(f, "/home?id=123456", "", rng, scratch), 123456u);
    EXPECT_EQ(KeySource("query:id").request_id(f, "/home?id=18446744073709551615", "", rng, scratch),
              18446744073709551615ull);
    EXPECT_EQ(KeySource("header:X-Key").request_id(f, "/", "", rng, scratch),
              ringlb::key_to_request_id("alice"));
    // A missing key falls back to a random assignment-style id.
    const auto id = KeySource("header:X-None").request_id(f, "/", "", rng, scratch);
    EXPECT_GE(id, 100000u);
    EXPECT_LE(id, 999999u);
}

}  // namespace
