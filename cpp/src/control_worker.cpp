#include "ringlb/control_worker.hpp"

#include <stdexcept>

namespace ringlb {

ControlWorker::~ControlWorker() {
    if (!on_worker_thread()) stop();
}

void ControlWorker::start() {
    std::lock_guard lock(mutex_);
    if (running_) return;
    stopping_ = false;
    running_ = true;
    thread_ = std::thread([this] { run(); });
    worker_id_.store(thread_.get_id());
}

bool ControlWorker::post(std::function<void()> job) {
    {
        std::lock_guard lock(mutex_);
        if (!running_ || stopping_) return false;
        jobs_.push_back(std::move(job));
    }
    wake_.notify_one();
    return true;
}

void ControlWorker::stop() {
    if (on_worker_thread()) throw std::logic_error("the control worker cannot stop itself");
    std::deque<std::function<void()>> dropped;
    {
        std::lock_guard lock(mutex_);
        if (!running_) return;
        stopping_ = true;
        dropped.swap(jobs_);
    }
    wake_.notify_all();
    thread_.join();
    worker_id_.store(std::thread::id());
    std::lock_guard lock(mutex_);
    running_ = false;
    // `dropped` is destroyed here, on the caller's thread, after the join.
}

bool ControlWorker::on_worker_thread() const noexcept {
    return worker_id_.load() == std::this_thread::get_id();
}

void ControlWorker::run() {
    for (;;) {
        std::function<void()> job;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
            if (stopping_) return;
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        job();  // jobs catch their own exceptions: the router wraps every one
    }
}

}  // namespace ringlb
