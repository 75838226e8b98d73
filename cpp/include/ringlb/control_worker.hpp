// ControlWorker: one thread that runs control-plane jobs (/add, /rm) one at a
// time, so that I/O threads never wait on the control plane (which may take
// seconds to spawn a replica, and in Python must take the GIL).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace ringlb {

class ControlWorker {
public:
    ControlWorker() = default;
    ~ControlWorker();  // stop()
    ControlWorker(const ControlWorker&) = delete;
    ControlWorker& operator=(const ControlWorker&) = delete;

    // Starts the thread; a no-op when it runs already. May follow stop().
    void start();
    // Queues a job to run after the ones before it. Returns false (and drops
    // the job) when the worker is not running.
    bool post(std::function<void()> job);
    // Lets the running job finish, drops the queued ones (destroying them on
    // the calling thread) and joins the thread. Idempotent. Must not be
    // called from a job (it would wait for itself): throws std::logic_error then.
    void stop();
    // True on the worker thread (inside a job).
    bool on_worker_thread() const noexcept;

private:
    void run();

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> jobs_;
    bool running_ = false;
    bool stopping_ = false;
    std::thread thread_;
    std::atomic<std::thread::id> worker_id_{};  // read without the mutex by on_worker_thread
};

}  // namespace ringlb
