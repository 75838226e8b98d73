// KeySource: where the router takes a request's routing key from (SPEC §3).
//
//   random        a fresh 6-digit id per request (100000..999999), the assignment's
//   header:NAME   the value of request header NAME
//   query:NAME    the (percent-decoded) value of query parameter NAME
//   cookie:NAME   the value of cookie NAME (RFC 6265 §5.4 Cookie header)
//   path          the target's path, without the query
//   client-ip     the client's IP address in text form
//
// The key becomes the request id through key_to_request_id(): a decimal
// integer below 2^64 is the id itself (`query:id` with `/home?id=123456`
// reproduces the assignment's mapping), anything else is hashed. A request
// that does not carry its key (no such header, parameter or cookie) falls
// back to a random id, as HAProxy's `balance hdr()` falls back to round
// robin: scattering keyless requests beats sending them all to one replica.
#pragma once

#include <boost/beast/http/fields.hpp>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "ringlb/field_arena.hpp"

namespace ringlb {

class KeySource {
public:
    enum class Kind { random, header, query, cookie, path, client_ip };

    // Parses a key source spec as above. Throws std::invalid_argument for an
    // unknown kind, a missing or empty NAME, or a NAME on `random`/`path`/`client-ip`.
    explicit KeySource(std::string_view spec);

    Kind kind() const noexcept { return kind_; }
    const std::string& name() const noexcept { return name_; }
    // The spec in canonical form ("query:id").
    std::string spec() const;

    // The routing key of a request, or nullopt when the request has none (then
    // the caller draws a random id). `target` is the request-target,
    // `client_ip` the peer address in text form. The view points into
    // `fields`, `target`, `client_ip` or `scratch` (used when percent-decoding).
    // Fields: http::fields or ArenaFields (instantiated in key_source.cpp).
    template <class Fields>
    std::optional<std::string_view> key(const Fields& fields, std::string_view target,
                                        std::string_view client_ip, std::string& scratch) const;

    // The request id for a request: key_to_request_id(key) when there is a key,
    // else a random id from `rng` in 100000..999999.
    template <class Fields>
    std::uint64_t request_id(const Fields& fields, std::string_view target,
                             std::string_view client_ip, std::mt19937_64& rng,
                             std::string& scratch) const;

    // A uniformly random id in 100000..999999 (the assignment's request id).
    static std::uint64_t random_id(std::mt19937_64& rng) noexcept;

    // The value of cookie `name` in a Cookie header value ("a=1; b=2"), or
    // nullopt. Pairs without '=' are skipped; surrounding spaces are trimmed
    // and a value in double quotes loses them (RFC 6265 §4.1.1).
    static std::optional<std::string_view> cookie_value(std::string_view header,
                                                        std::string_view name) noexcept;

    // The path part of a request-target: up to '?' or '#'.
    static std::string_view path_of(std::string_view target) noexcept;

private:
    Kind kind_ = Kind::random;
    std::string name_;
    // query:NAME with NAME percent-decoded: the escape-free fast path compares
    // parameter names with it, as Boost.URL compares decoded names.
    std::string decoded_name_;
};

#define RINGLB_KEY_SOURCE_FOR(Fields, extern_)                                                     \
    extern_ template std::optional<std::string_view> KeySource::key<Fields>(                       \
        const Fields&, std::string_view, std::string_view, std::string&) const;                    \
    extern_ template std::uint64_t KeySource::request_id<Fields>(                                  \
        const Fields&, std::string_view, std::string_view, std::mt19937_64&, std::string&) const;
RINGLB_KEY_SOURCE_FOR(boost::beast::http::fields, extern)
RINGLB_KEY_SOURCE_FOR(ArenaFields, extern)

}  // namespace ringlb
