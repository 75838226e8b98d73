#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <random>
#include <set>

#include "ringlb/admin_api.hpp"
#include "ringlb/replica_set.hpp"

namespace {

using ringlb::AdminApi;
using ringlb::ControlError;
using ringlb::ControlRequest;
using ringlb::ReplicaSet;

std::unique_ptr<ReplicaSet> make_three(std::uint32_t slots = 512, std::uint32_t k = 9) {
    ringlb::RingOptions o;
    o.slots = slots;
    o.virtual_nodes = k;
    auto set = std::make_unique<ReplicaSet>(o);
    set->add({{0, "Server1", "127.0.0.1", 1}, {0, "Server2", "127.0.0.1", 2},
              {0, "Server3", "127.0.0.1", 3}});
    return set;
}

std::string add_error(const std::string& body, const ReplicaSet& set) {
    try {
        AdminApi::validate_add(body, *set.snapshot());
    } catch (const ControlError& e) {
        EXPECT_EQ(e.status, 400);
        return e.what();
    }
    return "accepted";
}

std::string rm_error(const std::string& body, const ReplicaSet& set) {
    std::mt19937_64 rng(7);
    try {
        AdminApi::validate_remove(body, *set.snapshot(), rng);
    } catch (const ControlError& e) {
        EXPECT_EQ(e.status, 400);
        return e.what();
    }
    return "accepted";
}

TEST(AdminApi, HostnameRule) {
    for (const char* ok : {"a", "S5", "Server10", "a-b_c.d", "0abc"}) {
        EXPECT_TRUE(AdminApi::valid_hostname(ok)) << ok;
    }
    EXPECT_TRUE(AdminApi::valid_hostname(std::string(63, 'x')));
    for (const char* bad : {"", "-a", "_a", ".a", "a b", "a/b", "a\tb", "é", "a:b"}) {
        EXPECT_FALSE(AdminApi::valid_hostname(bad)) << bad;
    }
    EXPECT_FALSE(AdminApi::valid_hostname(std::string(64, 'x')));
}

TEST(AdminApi, AddTheSpecExample) {
    auto owned = make_three();
    auto& set = *owned;
    const auto req =
        AdminApi::validate_add(R"({"n": 4, "hostnames": ["S5", "S4", "S10", "S11"]})", *set.snapshot());
    EXPECT_EQ(req.op, ControlRequest::Op::add);
    EXPECT_EQ(req.hostnames, (std::vector<std::string>{"S5", "S4", "S10", "S11"}));
}

TEST(AdminApi, AddGeneratesTheSmallestFreeServerNames) {
    ReplicaSet set({});
    set.add({{0, "Server2", "127.0.0.1", 2}});
    const auto req = AdminApi::validate_add(R"({"n": 3, "hostnames": ["Server1"]})", *set.snapshot());
    EXPECT_EQ(req.hostnames, (std::vector<std::string>{"Server1", "Server3", "Server4"}));
    EXPECT_EQ(AdminApi::validate_add(R"({"n": 1})", *set.snapshot()).hostnames,
              std::vector<std::string>{"Server1"});
}

TEST(AdminApi, AddErrors) {
    auto owned = make_three();
    auto& set = *owned;
    EXPECT_EQ(add_error(R"({"n": 2, "hostnames": ["a", "b", "c"]})", set),
              "Length of hostname list is more than newly added instances");
    EXPECT_EQ(add_error("nope", set), "request body is not valid JSON: syntax error");
    EXPECT_EQ(add_error("", set), "request body is not valid JSON: incomplete JSON");
    EXPECT_EQ(add_error(R"({"n": 1} trailing)", set), "request body is not valid JSON: extra data");
    EXPECT_EQ(add_error("42", set),
              R"(request body must be a JSON object like {"n": 1, "hostnames": [...]})");
    EXPECT_EQ(add_error("{}", set), "'n' is missing");
    EXPECT_EQ(add_error(R"({"n": "1"})", set), "'n' must be an integer");
    EXPECT_EQ(add_error(R"({"n": 1.0})", set), "'n' must be an integer");
    EXPECT_EQ(add_error(R"({"n": false})", set), "'n' must be an integer");
    EXPECT_EQ(add_error(R"({"n": 0})", set), "'n' must be a positive integer, got 0");
    EXPECT_EQ(add_error(R"({"n": -9223372036854775808})", set),
              "'n' must be a positive integer, got -9223372036854775808");
    EXPECT_EQ(add_error(R"({"n": 18446744073709551615})", set), "'n' must be at most 1000");
    EXPECT_EQ(add_error(R"({"n": 1, "hostnames": null})", set), "'hostnames' must be a list of strings");
    EXPECT_EQ(add_error(R"({"n": 1, "hostnames": [1]})", set), "'hostnames' must be a list of strings");
    EXPECT_EQ(add_error(R"({"n": 1, "hostnames": ["a b"]})", set),
              "hostname 'a b' is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$");
    EXPECT_EQ(add_error(R"({"n": 2, "hostnames": ["x", "x"]})", set), "hostname 'x' appears more than once");
    EXPECT_EQ(add_error(R"({"n": 1, "hostnames": ["Server3"]})", set), "hostname 'Server3' is already present");
    EXPECT_EQ(add_error(R"({"n": 1, "extra": 1})", set),
              "unknown field 'extra' (expected 'n', 'hostnames', 'addresses' and 'weights')");
    EXPECT_EQ(add_error(R"({"n": 2, "addresses": ["10.0.0.7:80"]})", set),
              "'addresses' must give one address per new replica: n is 2, there are 1");
    EXPECT_EQ(add_error(R"({"n": 1, "addresses": "10.0.0.7:80"})", set),
              "'addresses' must be a list of \"HOST:PORT\" strings");
    EXPECT_EQ(add_error(R"({"n": 1, "addresses": [7]})", set),
              "'addresses' must be a list of \"HOST:PORT\" strings");
    EXPECT_EQ(add_error(R"({"n": 1, "hostnames": ["web3"], "addresses": ["10.0.0.7:8080"]})", set),
              "accepted");
    EXPECT_EQ(add_error(R"({"n": 54})", set), "cannot add 54 replicas: the ring has room for 53 more");
    EXPECT_EQ(add_error(R"({"n": 53})", set), "accepted");
}

TEST(AdminApi, RoomLeftCountsReplicasOffTheRing) {
    auto owned = make_three(64, 16);  // room for 4
    auto& set = *owned;
    EXPECT_EQ(AdminApi::room_left(*set.snapshot(), 100), 1u);
    set.set_serving(2, false);
    EXPECT_EQ(AdminApi::room_left(*set.snapshot(), 100), 1u);
    EXPECT_EQ(AdminApi::room_left(*set.snapshot(), 0), 0u);
    ReplicaSet empty({});
    EXPECT_EQ(AdminApi::room_left(*empty.snapshot(), 1000), 56u);  // floor(512 / 9)
}

TEST(AdminApi, RemoveTheSpecExample) {
    auto owned = make_three();
    auto& set = *owned;
    set.add({{0, "S5", "127.0.0.1", 5}, {0, "S4", "127.0.0.1", 4}});
    std::mt19937_64 rng(3);
    const auto req =
        AdminApi::validate_remove(R"({"n": 3, "hostnames": ["S5", "S4"]})", *set.snapshot(), rng);
    EXPECT_EQ(req.op, ControlRequest::Op::remove);
    ASSERT_EQ(req.hostnames.size(), 3u);
    EXPECT_EQ(req.hostnames[0], "S5");
    EXPECT_EQ(req.hostnames[1], "S4");
    EXPECT_TRUE(req.hostnames[2].starts_with("Server"));
}

TEST(AdminApi, RemovePicksUniformlyAmongTheOthers) {
    auto owned = make_three();
    auto& set = *owned;
    std::mt19937_64 rng(11);
    std::map<std::string, int> picks;
    for (int i = 0; i < 3000; ++i) {
        const auto req = AdminApi::validate_remove(R"({"n": 2})", *set.snapshot(), rng);
        ASSERT_EQ(req.hostnames.size(), 2u);
        ASSERT_NE(req.hostnames[0], req.hostnames[1]);
        for (const auto& h : req.hostnames) ++picks[h];
    }
    ASSERT_EQ(picks.size(), 3u);
    for (const auto& [h, n] : picks) EXPECT_NEAR(n, 2000, 200) << h;
}

TEST(AdminApi, RemoveErrors) {
    auto owned = make_three();
    auto& set = *owned;
    EXPECT_EQ(rm_error(R"({"n": 1, "hostnames": ["Server1", "Server2"]})", set),
              "Length of hostname list is more than removable instances");
    EXPECT_EQ(rm_error(R"({"n": 4})", set), "cannot remove 4 replicas: only 3 present");
    EXPECT_EQ(rm_error(R"({"n": 1, "hostnames": ["S9"]})", set), "hostname 'S9' is not a replica");
    EXPECT_EQ(rm_error(R"({"n": -1})", set), "'n' must be a positive integer, got -1");
    EXPECT_EQ(rm_error(R"([])", set),
              R"(request body must be a JSON object like {"n": 1, "hostnames": [...]})");
    EXPECT_EQ(rm_error(R"({"n": 3, "hostnames": ["Server1", "Server2", "Server3"]})", set), "accepted");
}

TEST(AdminApi, Bodies) {
    auto owned = make_three();
    auto& set = *owned;
    EXPECT_EQ(boost::json::parse(AdminApi::rep_body(*set.snapshot())),
              boost::json::parse(R"({"message": {"N": 3, "replicas": ["Server1", "Server2", "Server3"]},
                                     "status": "successful"})"));
    EXPECT_EQ(AdminApi::error_body("it \"broke\""),
              R"({"message":"<Error> it \"broke\"","status":"failure"})");
    ReplicaSet empty({});
    EXPECT_EQ(AdminApi::rep_body(*empty.snapshot()),
              R"({"message":{"N":0,"replicas":[]},"status":"successful"})");
}

}  // namespace

namespace {

TEST(AdminApi, DuplicateKeysAreRefused) {
    auto set = make_three();
    // Boost.JSON's DOM would keep the last value and act as n = 2.
    EXPECT_EQ(add_error(R"({"n": 1, "n": 2})", *set), "request body names 'n' more than once");
    EXPECT_EQ(add_error(R"({"n": 1, "hostnames": ["A"], "hostnames": ["B"]})", *set),
              "request body names 'hostnames' more than once");
    EXPECT_EQ(rm_error(R"({"n": 1, "n": 1})", *set), "request body names 'n' more than once");
    // Equal keys in different objects are fine; the unknown-field rule still applies.
    EXPECT_EQ(add_error(R"({"n": 1, "x": {"n": 1}})", *set),
              "unknown field 'x' (expected 'n', 'hostnames', 'addresses' and 'weights')");
    EXPECT_EQ(rm_error(R"({"n": 1, "addresses": []})", *set),
              "unknown field 'addresses' (expected 'n' and 'hostnames')");
}

TEST(AdminApi, ReplicaLimitsBoundAddAndRemove) {
    auto set = make_three();
    const ringlb::ReplicaLimits limits{2, 5};
    const auto snap = set->snapshot();
    EXPECT_EQ(AdminApi::validate_add(R"({"n": 2})", *snap, limits).hostnames.size(), 2u);
    try {
        AdminApi::validate_add(R"({"n": 3})", *snap, limits);
        FAIL() << "accepted";
    } catch (const ControlError& e) {
        EXPECT_EQ(e.status, 400);
        EXPECT_STREQ(e.what(), "cannot add 3 replicas: at most 5 may be registered "
                               "(--max-replicas), 3 are");
    }
    // One /add asking for more than the bound is refused before the ring is asked.
    EXPECT_THROW(AdminApi::validate_add(R"({"n": 900})", *snap, limits), ControlError);
    std::mt19937_64 rng(1);
    EXPECT_EQ(AdminApi::validate_remove(R"({"n": 1})", *snap, rng, limits).hostnames.size(), 1u);
    try {
        AdminApi::validate_remove(R"({"n": 2})", *snap, rng, limits);
        FAIL() << "accepted";
    } catch (const ControlError& e) {
        EXPECT_STREQ(e.what(), "cannot remove 2 replicas: at least 2 must stay registered "
                               "(--min-replicas), 3 are");
    }
}

TEST(AdminApi, AuthorizeWithAToken) {
    EXPECT_FALSE(AdminApi::authorize("s3cret", "Bearer s3cret", false));
    EXPECT_FALSE(AdminApi::authorize("s3cret", "bearer s3cret", true));
    for (const char* wrong : {"", "Bearer s3cre", "Bearer s3cret2", "Bearer S3cret", "Basic s3cret",
                              "Bearer  s3cret", "s3cret"}) {
        const auto refused = AdminApi::authorize("s3cret", wrong, true);
        ASSERT_TRUE(refused) << wrong;
        EXPECT_EQ(refused->status, 401) << wrong;
    }
}

TEST(AdminApi, AuthorizeWithoutATokenOnlyOnLoopback) {
    EXPECT_FALSE(AdminApi::authorize("", "", true));
    EXPECT_FALSE(AdminApi::authorize("", "Bearer anything", true));
    const auto refused = AdminApi::authorize("", "", false);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 403);
    EXPECT_NE(std::string(refused->what()).find("--admin-token"), std::string::npos);
}

// Found by fuzz/fuzz_admin_json: an invalid hostname is quoted cut at 100
// bytes, which could split a UTF-8 character, and Boost.JSON writes strings
// as they are: the error body was not JSON. Any bytes a message quotes (a
// request path too) now come out as well-formed UTF-8.
TEST(AdminApi, ErrorBodiesAreJsonWhateverTheMessageQuotes) {
    for (const std::string& message : {std::string("caf\xC3", 4), std::string("\xFF\xFE"),
                                      std::string("\xED\xA0\x80"),      // a surrogate
                                      std::string("\xC0\xAF"),          // overlong '/'
                                      std::string("\xF4\x90\x80\x80"),  // past U+10FFFF
                                      std::string("a\0b", 3)}) {
        const std::string body = AdminApi::error_body(message);
        boost::json::error_code ec;
        const auto v = boost::json::parse(body, ec);
        ASSERT_FALSE(ec) << body;
        EXPECT_TRUE(v.at("message").as_string().starts_with("<Error> ")) << body;
    }
    EXPECT_EQ(AdminApi::error_body("caf\xC3"), R"({"message":"<Error> caf)" "\xEF\xBF\xBD" R"(","status":"failure"})");
    // Well-formed text, ASCII or not, is kept as it is.
    EXPECT_EQ(AdminApi::error_body("caf\xC3\xA9 \xF0\x9F\x98\x80"),
              R"({"message":"<Error> caf)" "\xC3\xA9 \xF0\x9F\x98\x80" R"(","status":"failure"})");
    // The hostname case itself: a 2-byte character across the 100-byte cut.
    auto owned = make_three();
    const std::string name = "-" + std::string(98, 'a') + "\xC3\xA9";
    try {
        AdminApi::validate_add(R"({"n": 1, "hostnames": [")" + name + R"("]})", *owned->snapshot());
        FAIL() << "accepted";
    } catch (const ControlError& e) {
        boost::json::error_code ec;
        boost::json::parse(AdminApi::error_body(e.what()), ec);
        EXPECT_FALSE(ec);
    }
}

}  // namespace

namespace {

std::unique_ptr<ReplicaSet> make_set(const std::string& scheme) {
    ringlb::RingOptions o;
    o.scheme = scheme;
    auto set = std::make_unique<ReplicaSet>(o);
    set->add({{0, "Server1", "127.0.0.1", 1}});
    return set;
}

}  // namespace

TEST(AdminApi, AddWeights) {
    auto maglev = make_set("maglev");
    const auto req = AdminApi::validate_add(R"({"n": 2, "weights": [3, 1]})", *maglev->snapshot());
    EXPECT_EQ(req.weights, (std::vector<std::uint32_t>{3, 1}));
    EXPECT_EQ(req.hostnames.size(), 2u);
    EXPECT_TRUE(AdminApi::validate_add(R"({"n": 1})", *maglev->snapshot()).weights.empty());
    EXPECT_EQ(add_error(R"({"n": 2, "weights": [2]})", *maglev),
              "'weights' must give one weight per new replica: n is 2, there are 1");
    EXPECT_EQ(add_error(R"({"n": 1, "weights": 2})", *maglev), "'weights' must be a list of integers");
    EXPECT_EQ(add_error(R"({"n": 1, "weights": [1.5]})", *maglev), "'weights' must be a list of integers");
    EXPECT_EQ(add_error(R"({"n": 1, "weights": ["2"]})", *maglev), "'weights' must be a list of integers");
    EXPECT_EQ(add_error(R"({"n": 1, "weights": [0]})", *maglev), "weight must be between 1 and 256, got 0");
    EXPECT_EQ(add_error(R"({"n": 1, "weights": [257]})", *maglev),
              "weight must be between 1 and 256, got 257");
    EXPECT_EQ(add_error(R"({"n": 1, "weights": [-3]})", *maglev),
              "weight must be between 1 and 256, got -3");
    EXPECT_EQ(add_error(R"({"n": 1, "weights": [18446744073709551615]})", *maglev),
              "weight must be between 1 and 256, got 9223372036854775807");
    EXPECT_EQ(add_error(R"({"n": 1, "weights": [256]})", *maglev), "accepted");

    // Slot schemes take weight 1 only: K virtual servers per replica is what they are.
    auto slots = make_three();
    EXPECT_EQ(add_error(R"({"n": 2, "weights": [1, 1]})", *slots), "accepted");
    EXPECT_EQ(add_error(R"({"n": 2, "weights": [1, 2]})", *slots),
              "hash scheme 'assignment' does not take weights (each replica has K virtual "
              "servers); use ketama, ketama-xxh3 or maglev for weighted replicas");
    // Weights are for /add only.
    EXPECT_EQ(rm_error(R"({"n": 1, "weights": [1]})", *slots),
              "unknown field 'weights' (expected 'n' and 'hostnames')");
}
