// ringlb-replica: the replica server of SPEC §1.
//
//   GET /home      -> 200 {"message": "Hello from Server: <ID>", "status": "successful"}
//   GET /heartbeat -> 200, empty body
//   anything else  -> 404
//
// Statically linked (no resolver calls, addresses are literals) so that it is
// the only file in its FROM scratch image. The chosen port goes to the first
// line of stdout so that `--port 0` can be used by launchers and tests.
// SIGTERM/SIGINT: stop accepting, close idle keep-alive connections, let
// in-flight requests finish (for at most 500 ms), exit 0 as soon as they have.
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
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
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

class Session;

// The live sessions, so that a stop can close the idle ones at once and the
// process can exit the moment the busy ones have answered: a container stop
// or /rm then takes milliseconds instead of the whole grace period.
class Sessions {
public:
    // Runs once stop_all() was called and no session is left.
    void on_drained(std::function<void()> f) {
        const std::lock_guard lock(mutex_);
        on_drained_ = std::move(f);
    }
    // False once stopping: the new session must close at once.
    bool add(Session* s) {
        const std::lock_guard lock(mutex_);
        live_.insert(s);
        return !stopping_;
    }
    void remove(Session* s) {
        const std::lock_guard lock(mutex_);
        live_.erase(s);
        if (stopping_ && live_.empty() && on_drained_) on_drained_();
    }
    // Asks every session to finish; on_drained runs once none is left (now,
    // if none is).
    void stop_all();

private:
    std::mutex mutex_;
    std::unordered_set<Session*> live_;
    bool stopping_ = false;
    std::function<void()> on_drained_;
};

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket socket, const std::string& home, Sessions& sessions)
        : stream_(std::move(socket)), home_(home), sessions_(sessions) {
        stopping_ = !sessions_.add(this);
    }
    ~Session() { sessions_.remove(this); }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    void run() { do_read(); }

    // On the session's strand: an idle connection closes now, a busy one
    // after its response.
    void stop() {
        stopping_ = true;
        // Beast's parser takes in a request line before the rest of its
        // header: a request has begun once either holds a byte.
        if (reading_ && buffer_.size() == 0 && !parser_->got_some()) stream_.close();
    }

    auto executor() { return stream_.get_executor(); }

private:
    void do_read() {
        if (stopping_) return close();
        reading_ = true;
        parser_.emplace();
        // Idle keep-alive connections are closed after a while so that
        // shutdown is never held up by a silent client.
        stream_.expires_after(std::chrono::seconds(60));
        http::async_read(stream_, buffer_, *parser_,
                         beast::bind_front_handler(&Session::on_read, shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        reading_ = false;
        if (ec) return close();
        const auto& req = parser_->get();
        res_ = {};
        res_.version(req.version());
        res_.keep_alive(req.keep_alive() && !stopping_);
        res_.set(http::field::server, "ringlb-replica");
        const auto target = req.target();
        const auto path = target.substr(0, target.find('?'));
        const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
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
    Sessions& sessions_;
    bool reading_ = false;   // waiting for a request
    bool stopping_ = false;  // the process is stopping: no further request
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> res_;
};

void Sessions::stop_all() {
    std::vector<std::shared_ptr<Session>> alive;
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
        if (live_.empty()) {
            if (on_drained_) on_drained_();
            return;
        }
        // A session whose destructor waits for this lock is already gone.
        for (Session* s : live_) {
            if (auto p = s->weak_from_this().lock()) alive.push_back(std::move(p));
        }
    }
    // Outside the lock: the last reference to a session may be dropped here,
    // and its destructor takes the lock.
    for (const auto& s : alive) asio::post(s->executor(), [s] { s->stop(); });
}

void accept_loop(tcp::acceptor& acceptor, const std::string& home, Sessions& sessions) {
    acceptor.async_accept(
        asio::make_strand(acceptor.get_executor()),
        [&acceptor, &home, &sessions](beast::error_code ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted) return;
            if (!ec) {
                socket.set_option(tcp::no_delay(true), ec);
                std::make_shared<Session>(std::move(socket), home, sessions)->run();
            }
            accept_loop(acceptor, home, sessions);
        });
}

}  // namespace

int main(int argc, char** argv) {
    const Options opt = parse_options(argc, argv);
    beast::error_code ec;
    const auto address = asio::ip::make_address(opt.host, ec);
    if (ec) usage(("--host must be an IP address, got " + opt.host).c_str());

    // Declared before the io_context: handlers destroyed with it own sessions.
    Sessions sessions;
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
    // Graceful stop: close the acceptor and the idle connections; the process
    // exits once the requests in flight are answered, or after a grace period
    // for a client that never reads its answer.
    asio::steady_timer grace(ioc);
    sessions.on_drained([&ioc] { ioc.stop(); });
    accept_loop(acceptor, home, sessions);

    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) {
        beast::error_code ignored;
        acceptor.close(ignored);
        grace.expires_after(std::chrono::milliseconds(500));
        grace.async_wait([&ioc](beast::error_code ec) {
            if (!ec) ioc.stop();
        });
        sessions.stop_all();
    });

    std::vector<std::thread> pool;
    for (unsigned i = 1; i < opt.threads; ++i) pool.emplace_back([&ioc] { ioc.run(); });
    ioc.run();
    for (auto& t : pool) t.join();
    sessions.on_drained(nullptr);  // the io_context's destructor may still end sessions
    return 0;
}
