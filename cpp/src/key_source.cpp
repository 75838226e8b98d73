#include "ringlb/key_source.hpp"

#include <boost/url/grammar/string_token.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <boost/url/pct_string_view.hpp>

#include <stdexcept>

#include "ringlb/hash_schemes.hpp"

namespace ringlb {
namespace {

namespace urls = boost::urls;

constexpr std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// RFC 3986 query characters (pchar / "/" / "?"), without '%'.
constexpr bool query_char(unsigned char c) noexcept {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    switch (c) {
        case '-': case '.': case '_': case '~':                          // unreserved
        case '!': case '$': case '&': case '\'': case '(': case ')':     // sub-delims
        case '*': case '+': case ',': case ';': case '=':
        case ':': case '@': case '/': case '?':
            return true;
        default:
            return false;
    }
}

// The value of parameter `name` in a query without percent-escapes, as
// Boost.URL's encoded_params().find() would give it: the first "name=value"
// between '&'s, `name` being decoded already. The outer optional is empty when the query has escapes (the
// caller then asks Boost.URL); the inner one when there is no such parameter
// with a value, or the query is not valid.
std::optional<std::optional<std::string_view>> plain_query_value(std::string_view query,
                                                                 std::string_view name) noexcept {
    for (const char c : query) {
        if (c == '%') return std::nullopt;
        if (!query_char(static_cast<unsigned char>(c))) return std::optional<std::string_view>{};
    }
    std::optional<std::string_view> found;
    while (true) {
        const auto amp = query.find('&');
        const auto param = query.substr(0, amp);
        const auto eq = param.find('=');
        if (param.substr(0, eq) == name) {
            if (eq != std::string_view::npos) found = param.substr(eq + 1);
            return found;  // the first parameter of that name decides, as in Boost.URL
        }
        if (amp == std::string_view::npos) return found;
        query.remove_prefix(amp + 1);
    }
}

std::string_view after(std::string_view spec, std::string_view prefix) {
    const auto name = spec.substr(prefix.size());
    if (name.empty()) {
        throw std::invalid_argument("key source '" + std::string(spec) + "' needs a NAME after '" +
                                    std::string(prefix) + "'");
    }
    return name;
}

}  // namespace

KeySource::KeySource(std::string_view spec) {
    if (spec == "random") {
        kind_ = Kind::random;
    } else if (spec == "path") {
        kind_ = Kind::path;
    } else if (spec == "client-ip") {
        kind_ = Kind::client_ip;
    } else if (spec.starts_with("header:")) {
        kind_ = Kind::header;
        name_ = after(spec, "header:");
        // A field name is an RFC 9110 token; anything else could never match.
        for (char c : name_) {
            if (c <= ' ' || c >= 127 || c == ':' || c == '"' || c == '(' || c == ')' || c == ',' ||
                c == '/' || c == ';' || c == '<' || c == '=' || c == '>' || c == '?' || c == '@' ||
                c == '[' || c == '\\' || c == ']' || c == '{' || c == '}') {
                throw std::invalid_argument("key source '" + std::string(spec) +
                                            "': not a valid header name");
            }
        }
    } else if (spec.starts_with("query:")) {
        kind_ = Kind::query;
        name_ = after(spec, "query:");
        const auto encoded = urls::make_pct_string_view(name_);
        if (!encoded) {
            throw std::invalid_argument("key source '" + std::string(spec) +
                                        "': not a valid query parameter name");
        }
        decoded_name_ = encoded->decode();
    } else if (spec.starts_with("cookie:")) {
        kind_ = Kind::cookie;
        name_ = after(spec, "cookie:");
        for (char c : name_) {
            if (c <= ' ' || c >= 127 || c == '=' || c == ';') {
                throw std::invalid_argument("key source '" + std::string(spec) +
                                            "': not a valid cookie name");
            }
        }
    } else {
        throw std::invalid_argument(
            "unknown key source '" + std::string(spec) +
            "' (known: random, header:NAME, query:NAME, cookie:NAME, path, client-ip)");
    }
}

std::string KeySource::spec() const {
    switch (kind_) {
        case Kind::random: return "random";
        case Kind::header: return "header:" + name_;
        case Kind::query: return "query:" + name_;
        case Kind::cookie: return "cookie:" + name_;
        case Kind::path: return "path";
        case Kind::client_ip: return "client-ip";
    }
    return "random";
}

std::string_view KeySource::path_of(std::string_view target) noexcept {
    return target.substr(0, target.find_first_of("?#"));
}

std::optional<std::string_view> KeySource::cookie_value(std::string_view header,
                                                        std::string_view name) noexcept {
    while (!header.empty()) {
        const auto semi = header.find(';');
        const auto pair = trim(header.substr(0, semi));
        header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
        const auto eq = pair.find('=');
        if (eq == std::string_view::npos) continue;
        if (trim(pair.substr(0, eq)) != name) continue;
        auto value = trim(pair.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
            value = value.substr(1, value.size() - 2);
        }
        return value;
    }
    return std::nullopt;
}

template <class Fields>
std::optional<std::string_view> KeySource::key(const Fields& fields, std::string_view target,
                                               std::string_view client_ip,
                                               std::string& scratch) const {
    switch (kind_) {
        case Kind::random:
            return std::nullopt;
        case Kind::path:
            return path_of(target);
        case Kind::client_ip:
            return client_ip;
        case Kind::header: {
            const auto it = fields.find(name_);
            if (it == fields.end()) return std::nullopt;
            return trim(it->value());
        }
        case Kind::cookie: {
            // A client may split its cookies over several Cookie fields.
            for (auto [it, end] = fields.equal_range(boost::beast::http::field::cookie); it != end;
                 ++it) {
                if (auto v = cookie_value(it->value(), name_)) return v;
            }
            return std::nullopt;
        }
        case Kind::query: {
            const auto q = target.find('?');
            if (q == std::string_view::npos) return std::nullopt;
            auto query = target.substr(q + 1);
            query = query.substr(0, query.find('#'));  // no place in a request-target: dropped
            // Without percent-escapes the decoded query is the query itself:
            // a split on '&' and '=' gives what Boost.URL would, for a
            // fraction of the cost (this runs on every request).
            // Boost.URL compares decoded names: "query:a%62" matches "?ab=1".
            if (auto plain = plain_query_value(query, decoded_name_)) return *plain;
            // Only "?<query>" is parsed, as a relative reference: Boost.URL
            // 1.81's parse_query() misreads a query that is not the end of a
            // NUL-terminated string, and the path is of no interest here.
            const auto parsed = urls::parse_relative_ref(target.substr(q, query.size() + 1));
            if (!parsed) return std::nullopt;  // not a valid query: no key rather than a guess
            const auto params = parsed->encoded_params();
            const auto it = params.find(name_);
            if (it == params.end() || !(*it).has_value) return std::nullopt;
            const urls::pct_string_view value = (*it).value;
            if (value.decoded_size() == value.size()) return std::string_view(value.data(), value.size());
            scratch.clear();
            value.decode({}, urls::string_token::assign_to(scratch));
            return std::string_view(scratch);
        }
    }
    return std::nullopt;
}

std::uint64_t KeySource::random_id(std::mt19937_64& rng) noexcept {
    return 100000 + rng() % 900000;  // modulo bias of 2^64 mod 900000 is < 1e-13: irrelevant
}

template <class Fields>
std::uint64_t KeySource::request_id(const Fields& fields, std::string_view target,
                                    std::string_view client_ip, std::mt19937_64& rng,
                                    std::string& scratch) const {
    if (kind_ == Kind::random) return random_id(rng);
    if (auto k = key(fields, target, client_ip, scratch)) return key_to_request_id(*k);
    return random_id(rng);
}

RINGLB_KEY_SOURCE_FOR(boost::beast::http::fields, )
RINGLB_KEY_SOURCE_FOR(ArenaFields, )

}  // namespace ringlb
