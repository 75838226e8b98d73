#include "ringlb/splice_pump.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/http/error.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

namespace ringlb {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// What one splice moves at most, and the pipe's capacity: 16 pages (the
// default) would take a 64 KiB loopback segment in several calls. The pipe
// holds references to the socket's pages, not copies, and only while a
// piece is between the two sockets.
constexpr int pipe_bytes = 256 * 1024;

error_code last_error() noexcept { return error_code(errno, boost::system::system_category()); }

// splice(2) has no MSG_NOSIGNAL (what Asio's writes use): writing to a
// connection the peer has closed raises SIGPIPE, whose default action ends
// the process. Where the process ignores it (Python does, as servers do),
// nothing is needed; else the signal is blocked on this thread around the
// call, and one that the call raised is taken back before it is unblocked.
class SigpipeGuard {
public:
    explicit SigpipeGuard(bool needed) noexcept : needed_(needed) {
        if (!needed_) return;
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    }
    ~SigpipeGuard() {
        if (!needed_) return;
        if (raised_ && !was_pending_) {
            const timespec now{};
            while (sigtimedwait(&pipe_, nullptr, &now) < 0 && errno == EINTR) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeGuard(const SigpipeGuard&) = delete;
    SigpipeGuard& operator=(const SigpipeGuard&) = delete;
    void raised() noexcept { raised_ = true; }

private:
    bool needed_;
    bool was_pending_ = false;
    bool raised_ = false;
    sigset_t pipe_{};
    sigset_t old_{};
};

bool sigpipe_ignored() noexcept {
    struct sigaction now{};
    return sigaction(SIGPIPE, nullptr, &now) == 0 && now.sa_handler == SIG_IGN;
}

}  // namespace

std::unique_ptr<SplicePump> SplicePump::make(Socket& from, Socket& to) {
    error_code ec;
    from.native_non_blocking(true, ec);
    if (!ec) to.native_non_blocking(true, ec);
    if (ec) return nullptr;
    int ends[2];
    if (::pipe2(ends, O_NONBLOCK | O_CLOEXEC) != 0) return nullptr;
    // Best effort: a smaller pipe only means more calls.
    (void)::fcntl(ends[1], F_SETPIPE_SZ, pipe_bytes);
    auto pump = std::unique_ptr<SplicePump>(new SplicePump(from, to, ends[0], ends[1]));
    pump->guard_sigpipe_ = !sigpipe_ignored();
    return pump;
}

SplicePump::SplicePump(Socket& from, Socket& to, int read_end, int write_end) noexcept
    : from_(from), to_(to), read_end_(read_end), write_end_(write_end) {}

SplicePump::~SplicePump() {
    ::close(read_end_);
    ::close(write_end_);
}

void SplicePump::start(std::shared_ptr<void> owner, std::uint64_t length, Waiting waiting,
                       Done done) {
    owner_ = std::move(owner);
    waiting_ = std::move(waiting);
    done_ = std::move(done);
    left_ = length;
    in_pipe_ = 0;
    pump();
}

void SplicePump::pump() {
    for (;;) {
        if (in_pipe_ > 0) {
            const Step out = drain();
            if (out == Step::failed) return;
            if (out == Step::blocked) {
                // While the destination is full, the pipe takes what the
                // source has (up to its capacity): the source's socket buffer
                // empties and its sender goes on sending, so the two sides
                // overlap instead of taking turns. Then the wait is for the
                // destination: with bytes in the pipe a source wait could
                // wake for a pipe that is full, again and again.
                if (left_ > 0 && fill() == Step::failed) return;
                return wait(Side::to);
            }
            continue;
        }
        if (left_ == 0) return finish({}, Side::to);
        const Step in = fill();
        if (in == Step::failed) return;
        if (in == Step::blocked) return wait(Side::from);  // the pipe is empty: the source is
    }
}

SplicePump::Step SplicePump::drain() {
    constexpr unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    const unsigned more = left_ > 0 ? SPLICE_F_MORE : 0u;
    for (;;) {
        ssize_t n = 0;
        int err = 0;  // the guard's own calls may change errno
        {
            SigpipeGuard guard(guard_sigpipe_);
            n = ::splice(read_end_, nullptr, to_.native_handle(), nullptr,
                         static_cast<std::size_t>(in_pipe_), flags | more);
            err = n < 0 ? errno : 0;
            if (err == EPIPE) guard.raised();
        }
        if (n > 0) {
            in_pipe_ -= static_cast<std::uint64_t>(n);
            return Step::moved;
        }
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) return Step::blocked;
        finish(n == 0 ? error_code(asio::error::broken_pipe)
                      : error_code(err, boost::system::system_category()),
               Side::to);
        return Step::failed;
    }
}

SplicePump::Step SplicePump::fill() {
    constexpr unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    for (;;) {
        const std::uint64_t room = pipe_bytes - std::min<std::uint64_t>(in_pipe_, pipe_bytes);
        if (room == 0) return Step::blocked;
        const std::size_t want = static_cast<std::size_t>(std::min(left_, room));
        const ssize_t n = ::splice(from_.native_handle(), nullptr, write_end_, nullptr, want, flags);
        if (n > 0) {
            left_ -= static_cast<std::uint64_t>(n);
            in_pipe_ += static_cast<std::uint64_t>(n);
            return Step::moved;
        }
        if (n == 0) {
            finish(boost::beast::http::error::partial_message, Side::from);
            return Step::failed;
        }
        if (errno == EINTR) continue;
        // The source has nothing now, or (with bytes in it) the pipe is full.
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Step::blocked;
        finish(last_error(), Side::from);
        return Step::failed;
    }
}

void SplicePump::wait(Side side) {
    waiting_(side);
    Socket& s = side == Side::from ? from_ : to_;
    const auto what = side == Side::from ? Socket::wait_read : Socket::wait_write;
    s.async_wait(what, [this, side, owner = owner_](error_code ec) {
        if (ec) return finish(ec, side);
        pump();
    });
}

void SplicePump::finish(error_code ec, Side side) {
    // The handlers are moved out first: `done` may destroy this pump.
    auto done = std::move(done_);
    waiting_ = nullptr;
    auto owner = std::move(owner_);
    done(ec, side);
}

}  // namespace ringlb
