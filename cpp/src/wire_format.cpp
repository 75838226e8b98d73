#include "ringlb/wire_format.hpp"

#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/serializer.hpp>

#include <cstdio>

namespace ringlb {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

void append_version(std::string& out, unsigned version) {
    const char text[8] = {'H', 'T', 'T', 'P', '/', static_cast<char>('0' + version / 10), '.',
                          static_cast<char>('0' + version % 10)};
    out.append(text, sizeof text);
}

template <class Fields>
void append_fields(std::string& out, const Fields& fields) {
    for (const auto& f : fields) {
        const auto name = f.name_string();
        const auto value = f.value();
        out.append(name.data(), name.size());
        out += ": ";
        out.append(value.data(), value.size());
        out += "\r\n";
    }
    out += "\r\n";
}

// The general case, through Beast (chunked bodies).
template <bool isRequest, class Fields>
void write_with_beast(const http::message<isRequest, http::string_body, Fields>& msg,
                      std::string& out, bool header_only) {
    out.clear();
    http::serializer<isRequest, http::string_body, Fields> sr(msg);
    sr.split(header_only);
    beast::error_code ec;
    const auto done = [&] { return header_only ? sr.is_header_done() : sr.is_done(); };
    while (!done() && !ec) {
        sr.next(ec, [&](beast::error_code&, const auto& buffers) {
            std::size_t n = 0;
            for (const auto b : beast::buffers_range_ref(buffers)) {
                out.append(static_cast<const char*>(b.data()), b.size());
                n += b.size();
            }
            sr.consume(n);
        });
    }
}

}  // namespace

template <class Fields>
void WireFormat::write(const Request<Fields>& req, std::string& out, bool header_only) {
    if (req.chunked()) return write_with_beast(req, out, header_only);
    out.clear();
    const auto method = req.method_string();
    const auto target = req.target();
    out.append(method.data(), method.size());
    out += ' ';
    out.append(target.data(), target.size());
    out += ' ';
    append_version(out, req.version());
    out += "\r\n";
    append_fields(out, req);
    if (!header_only) out += req.body();
}

template <class Fields>
void WireFormat::write(const Response<Fields>& res, std::string& out, bool header_only) {
    if (res.chunked() && !header_only) return write_with_beast(res, out, false);
    out.clear();
    append_version(out, res.version());
    const unsigned code = res.result_int();
    const char status[5] = {' ', static_cast<char>('0' + code / 100),
                            static_cast<char>('0' + (code / 10) % 10),
                            static_cast<char>('0' + code % 10), ' '};
    out.append(status, sizeof status);
    auto reason = res.reason();
    if (reason.empty()) reason = http::obsolete_reason(static_cast<http::status>(code));
    out.append(reason.data(), reason.size());
    out += "\r\n";
    append_fields(out, res);
    if (!header_only) out += res.body();
}

RINGLB_WIRE_FORMAT_FOR(http::fields, )
RINGLB_WIRE_FORMAT_FOR(ArenaFields, )

std::size_t WireFormat::frame_piece(std::span<boost::asio::const_buffer> out,
                                    std::array<char, 24>& head, std::string_view piece,
                                    bool chunked, bool last) {
    static constexpr std::string_view crlf = "\r\n";
    static constexpr std::string_view last_chunk = "0\r\n\r\n";
    std::size_t k = 0;
    if (chunked && !piece.empty()) {
        const int len = std::snprintf(head.data(), head.size(), "%zx\r\n", piece.size());
        out[k++] = boost::asio::buffer(head.data(), static_cast<std::size_t>(len));
    }
    if (!piece.empty()) out[k++] = boost::asio::buffer(piece.data(), piece.size());
    if (chunked && !piece.empty()) out[k++] = boost::asio::buffer(crlf);
    if (chunked && last) out[k++] = boost::asio::buffer(last_chunk);
    return k;
}

}  // namespace ringlb
