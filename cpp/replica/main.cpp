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
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "answers.hpp"
#include "replica_session.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using ringlb::replica::Answers;
using ringlb::replica::ReplicaSession;
using ringlb::replica::Sessions;

namespace {

struct Options {
    std::string host = "0.0.0.0";
    unsigned port = 5000;
    std::string id;
    unsigned threads = 1;
    unsigned idle_timeout_s = 60;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "ringlb-replica: %s\n"
                 "usage: ringlb-replica [--id ID] [--host ADDR] [--port PORT] [--threads N]\n"
                 "                      [--idle-timeout SECONDS]\n"
                 "  --id ID       server id reported by /home (default: $SERVER_ID)\n"
                 "  --host ADDR   IP address to listen on (default 0.0.0.0)\n"
                 "  --port PORT   TCP port, 0 = any free port (default 5000)\n"
                 "  --threads N   I/O threads (default 1)\n"
                 "  --idle-timeout SECONDS\n"
                 "                close a connection silent for this long (default 60)\n",
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
        } else if (flag == "--idle-timeout") {
            if (!parse_uint(value, 86400, o.idle_timeout_s) || o.idle_timeout_s == 0) {
                usage("--idle-timeout takes 1..86400 seconds");
            }
        } else {
            usage(("unknown flag " + flag).c_str());
        }
    }
    if (o.id.empty()) usage("no server id: pass --id or set SERVER_ID");
    return o;
}

// Connections are dealt to the threads' io_contexts in turn; each then
// lives on its own thread for good (see ReplicaSession).
struct Server {
    tcp::acceptor& acceptor;
    std::vector<std::unique_ptr<asio::io_context>>& iocs;
    const Answers& answers;
    Sessions& sessions;
    std::chrono::milliseconds idle_timeout;
};

void accept_loop(const Server& server, std::size_t next) {
    auto& ioc = *server.iocs[next % server.iocs.size()];
    server.acceptor.async_accept(
        ioc.get_executor(), [&server, next](beast::error_code ec, ringlb::replica::Socket socket) {
            if (ec == asio::error::operation_aborted) return;
            if (!ec) {
                std::make_shared<ReplicaSession>(std::move(socket), server.answers,
                                                 server.sessions, server.idle_timeout)
                    ->run();
            }
            accept_loop(server, next + 1);
        });
}

}  // namespace

int main(int argc, char** argv) {
    const Options opt = parse_options(argc, argv);
    beast::error_code ec;
    const auto address = asio::ip::make_address(opt.host, ec);
    if (ec) usage(("--host must be an IP address, got " + opt.host).c_str());

    // Declared before the io_contexts: handlers destroyed with them own sessions.
    Sessions sessions;
    // One io_context per thread (concurrency hint 1: a single thread runs
    // each), the acceptor on the first.
    std::vector<std::unique_ptr<asio::io_context>> iocs;
    for (unsigned i = 0; i < opt.threads; ++i) iocs.push_back(std::make_unique<asio::io_context>(1));
    auto& main_ioc = *iocs.front();
    tcp::acceptor acceptor(main_ioc);
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

    const Answers answers(opt.id);
    const auto stop_all_threads = [&iocs] {
        for (auto& ioc : iocs) ioc->stop();
    };
    // Graceful stop: close the acceptor and the idle connections; the process
    // exits once the requests in flight are answered, or after a grace period
    // for a client that never reads its answer.
    asio::steady_timer grace(main_ioc);
    sessions.on_drained(stop_all_threads);
    const Server server{acceptor, iocs, answers, sessions,
                        std::chrono::seconds(opt.idle_timeout_s)};
    accept_loop(server, 0);

    asio::signal_set signals(main_ioc, SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) {
        beast::error_code ignored;
        acceptor.close(ignored);
        grace.expires_after(std::chrono::milliseconds(500));
        grace.async_wait([&stop_all_threads](beast::error_code ec) {
            if (!ec) stop_all_threads();
        });
        sessions.stop_all();
    });

    // The other threads' contexts wait for connections, not for work of their own.
    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    std::vector<std::thread> pool;
    for (unsigned i = 1; i < opt.threads; ++i) {
        guards.push_back(asio::make_work_guard(*iocs[i]));
        pool.emplace_back([ioc = iocs[i].get()] { ioc->run(); });
    }
    main_ioc.run();
    stop_all_threads();
    for (auto& t : pool) t.join();
    sessions.on_drained(nullptr);  // the io_contexts' destructors may still end sessions
    return 0;
}
