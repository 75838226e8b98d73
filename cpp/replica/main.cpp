// ringlb-replica: the replica server of SPEC §1.
//
//   GET /home      -> 200 {"message": "Hello from Server: <ID>", "status": "successful"}
//   GET /heartbeat -> 200, empty body
//   anything else  -> 404
//
// Statically linked (no resolver calls, addresses are literals) so that it is
// the only file in its FROM scratch image. The chosen port goes to the first
// line of stdout so that `--port 0` can be used by launchers and tests.
// SIGTERM/SIGINT: stop accepting, let in-flight requests finish, exit 0.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
// Boost.JSON compiled into this binary: a static executable links no libboost_json.so.
#include <boost/json/src.hpp>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

struct Options {
    std::string host = "0.0.0.0";
    unsigned port = 5000;
    std::string id;
    unsigned threads = 1;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "ringlb-replica: %s\n"
                 "usage: ringlb-replica [--id ID] [--host ADDR] [--port PORT] [--threads N]\n"
                 "  --id ID       server id reported by /home (default: $SERVER_ID)\n"
                 "  --host ADDR   IP address to listen on (default 0.0.0.0)\n"
                 "  --port PORT   TCP port, 0 = any free port (default 5000)\n"
                 "  --threads N   I/O threads (default 1)\n",
                 why);
    std::exit(2);
}

bool parse_uint(const char* s, unsigned max, unsigned& out) {
    const char* end = s + std::strlen(s);
    auto [p, ec] = std::from_chars(s, end, out);
    return ec == std::errc() && p == end && out <= max;
}

Options parse_options(int argc, char** argv) {
    Options o;
    if (const char* env = std::getenv("SERVER_ID")) o.id = env;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--help" || flag == "-h") usage("the replica server of ringlb");
        if (i + 1 >= argc) usage(("missing value for " + flag).c_str());
        const char* value = argv[++i];
        if (flag == "--id") o.id = value;
        else if (flag == "--host") o.host = value;
        else if (flag == "--port") {
            if (!parse_uint(value, 65535, o.port)) usage("--port takes 0..65535");
        } else if (flag == "--threads") {
            if (!parse_uint(value, 256, o.threads) || o.threads == 0) usage("--threads takes 1..256");
        } else {
            usage(("unknown flag " + flag).c_str());
        }
    }
    if (o.id.empty()) usage("no server id: pass --id or set SERVER_ID");
    return o;
}

// Built once: every /home answer is the same bytes.
std::string home_body(const std::string& id) {
    boost::json::object o;
    o["message"] = "Hello from Server: " + id;
    o["status"] = "successful";
    return boost::json::serialize(o);
}

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket socket, const std::string& home) : stream_(std::move(socket)), home_(home) {}

    void run() { do_read(); }

private:
    void do_read() {
        req_ = {};
        // Idle keep-alive connections are closed after a while so that
        // shutdown is never held up by a silent client.
        stream_.expires_after(std::chrono::seconds(60));
        http::async_read(stream_, buffer_, req_,
                         beast::bind_front_handler(&Session::on_read, shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (ec) return close();
        res_ = {};
        res_.version(req_.version());
        res_.keep_alive(req_.keep_alive());
        res_.set(http::field::server, "ringlb-replica");
        const auto target = req_.target();
        const auto path = target.substr(0, target.find('?'));
        const bool get = req_.method() == http::verb::get || req_.method() == http::verb::head;
        if (get && path == "/home") {
            res_.result(http::status::ok);
            res_.set(http::field::content_type, "application/json");
            res_.body() = home_;
        } else if (get && path == "/heartbeat") {
            res_.result(http::status::ok);
        } else {
            res_.result(http::status::not_found);
            res_.set(http::field::content_type, "application/json");
            res_.body() = R"({"message": "not found", "status": "failure"})";
        }
        res_.prepare_payload();
        http::async_write(stream_, res_,
                          beast::bind_front_handler(&Session::on_write, shared_from_this()));
    }

    void on_write(beast::error_code ec, std::size_t) {
        if (ec || !res_.keep_alive()) return close();
        do_read();
    }

    void close() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }

    beast::tcp_stream stream_;
    const std::string& home_;
    beast::flat_buffer buffer_;
    http::request<http::string_body> req_;
    http::response<http::string_body> res_;
};

void accept_loop(tcp::acceptor& acceptor, const std::string& home) {
    acceptor.async_accept(asio::make_strand(acceptor.get_executor()),
                          [&acceptor, &home](beast::error_code ec, tcp::socket socket) {
                              if (ec == asio::error::operation_aborted) return;
                              if (!ec) {
                                  socket.set_option(tcp::no_delay(true), ec);
                                  std::make_shared<Session>(std::move(socket), home)->run();
                              }
                              accept_loop(acceptor, home);
                          });
}

}  // namespace

int main(int argc, char** argv) {
    const Options opt = parse_options(argc, argv);
    beast::error_code ec;
    const auto address = asio::ip::make_address(opt.host, ec);
    if (ec) usage(("--host must be an IP address, got " + opt.host).c_str());

    asio::io_context ioc(static_cast<int>(opt.threads));
    tcp::acceptor acceptor(ioc);
    const tcp::endpoint endpoint(address, static_cast<unsigned short>(opt.port));
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        std::fprintf(stderr, "ringlb-replica: cannot listen on %s:%u: %s\n", opt.host.c_str(),
                     opt.port, ec.message().c_str());
        return 1;
    }
    std::printf("%u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
    std::fflush(stdout);

    const std::string home = home_body(opt.id);
    accept_loop(acceptor, home);

    // Graceful stop: close the acceptor; ioc.run() returns once the sessions
    // in flight have written their responses and closed.
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) {
        beast::error_code ignored;
        acceptor.close(ignored);
        // Keep-alive sessions idle in a read would otherwise hold run() open
        // until their timeout; give in-flight work a short grace period.
        auto grace = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(500));
        grace->async_wait([&ioc, grace](beast::error_code) { ioc.stop(); });
    });

    std::vector<std::thread> pool;
    for (unsigned i = 1; i < opt.threads; ++i) pool.emplace_back([&ioc] { ioc.run(); });
    ioc.run();
    for (auto& t : pool) t.join();
    return 0;
}
