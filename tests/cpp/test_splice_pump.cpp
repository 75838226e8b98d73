// SplicePump between two real loopback TCP connections: the bytes arrive
// exactly and in order, the waits alternate between the sides, and a source
// that ends early is partial_message on `from`.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>

#include <memory>
#include <optional>
#include <string>

#include "ringlb/splice_pump.hpp"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using ringlb::Socket;
using ringlb::SplicePump;

// A connected pair of loopback TCP sockets on `ioc`.
struct Pair {
    explicit Pair(asio::io_context& ioc) : a(ioc), b(ioc) {
        tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0});
        a.connect(acceptor.local_endpoint());
        acceptor.accept(b);
    }
    Socket a;  // writes into the pair
    Socket b;  // the other end
};

struct Outcome {
    boost::system::error_code ec;
    SplicePump::Side side = SplicePump::Side::to;
    int waits_from = 0;
    int waits_to = 0;
};

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 7 + i / 251);
    return s;
}

// Moves `length` bytes from source.b to sink.a while `sent` is written into
// source.a (then closed when `close_source`) and sink.b is read to its end.
Outcome run_pump(std::size_t length, const std::string& sent, bool close_source,
                 std::string& received) {
    asio::io_context ioc;
    Pair source(ioc);
    Pair sink(ioc);
    auto pump = SplicePump::make(source.b, sink.a);
    EXPECT_NE(pump, nullptr);
    Outcome out;
    std::optional<Outcome> finished;
    asio::async_write(source.a, asio::buffer(sent), [&](boost::system::error_code ec, std::size_t) {
        EXPECT_FALSE(ec);
        if (close_source) source.a.close();
    });
    pump->start(
        std::make_shared<int>(0), length,
        [&](SplicePump::Side side) { ++(side == SplicePump::Side::from ? out.waits_from : out.waits_to); },
        [&](boost::system::error_code ec, SplicePump::Side side) {
            out.ec = ec;
            out.side = side;
            finished = out;
            sink.a.close();  // the reader below sees the end
        });
    std::string buf(64 * 1024, '\0');
    std::function<void()> read = [&] {
        sink.b.async_read_some(asio::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
            received.append(buf.data(), n);
            if (!ec) read();
        });
    };
    read();
    ioc.run();
    EXPECT_TRUE(finished.has_value());
    return finished.value_or(out);
}

TEST(SplicePump, MovesExactlyTheLengthAndNoMore) {
    const std::string sent = pattern(3 * 1024 * 1024 + 17);
    const std::size_t length = sent.size() - 1000;  // what follows is not the pump's
    std::string received;
    const Outcome out = run_pump(length, sent, false, received);
    EXPECT_FALSE(out.ec) << out.ec.message();
    EXPECT_EQ(received.size(), length);
    EXPECT_TRUE(received == sent.substr(0, length));
    EXPECT_GT(out.waits_from, 0);  // the writer is slower than the pump at times
}

TEST(SplicePump, ASourceThatEndsEarlyIsAPartialMessageOnFrom) {
    const std::string sent = pattern(256 * 1024);
    std::string received;
    const Outcome out = run_pump(sent.size() * 2, sent, true, received);
    EXPECT_EQ(out.ec, boost::beast::http::error::partial_message);
    EXPECT_EQ(out.side, SplicePump::Side::from);
    EXPECT_TRUE(received == sent);  // what came before the end was passed on
}

TEST(SplicePump, AClosedDestinationIsAnErrorOnTo) {
    asio::io_context ioc;
    Pair source(ioc);
    Pair sink(ioc);
    sink.b.close();  // the reader is gone: writes fail (EPIPE or a reset)
    auto pump = SplicePump::make(source.b, sink.a);
    ASSERT_NE(pump, nullptr);
    const std::string sent = pattern(8 * 1024 * 1024);
    asio::async_write(source.a, asio::buffer(sent), [](boost::system::error_code, std::size_t) {});
    std::optional<std::pair<boost::system::error_code, SplicePump::Side>> result;
    pump->start(std::make_shared<int>(0), sent.size(), [](SplicePump::Side) {},
                [&](boost::system::error_code ec, SplicePump::Side side) {
                    result.emplace(ec, side);
                    source.a.close();
                    source.b.close();
                });
    ioc.run_for(std::chrono::seconds(10));
    ASSERT_TRUE(result.has_value());
    EXPECT_TRUE(result->first);
    EXPECT_EQ(result->second, SplicePump::Side::to);
}

}  // namespace
