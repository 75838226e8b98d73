#include "ringlb/access_log.hpp"

#include <cerrno>
#include <ctime>
#include <system_error>

namespace ringlb {

AccessLog::AccessLog(const std::string& path, std::size_t max_pending)
    : out_(path == "-" ? stdout : std::fopen(path.c_str(), "a")),
      owned_(path != "-"),
      max_pending_(max_pending) {
    if (!out_) {
        throw std::system_error(errno, std::generic_category(),
                                "cannot open the access log '" + path + "'");
    }
    writer_ = std::thread([this] { run(); });
}

AccessLog::~AccessLog() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();
    if (owned_) std::fclose(out_);
}

std::string AccessLog::format(const Entry& e, std::chrono::system_clock::time_point when) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        when.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm utc{};
    gmtime_r(&secs, &utc);
    char stamp[80];  // room for any int the compiler can imagine in each field
    std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<int>(ms % 1000));
    char tail[96];
    std::snprintf(tail, sizeof tail, " status=%u duration_ms=%.3f retries=%zu\n", e.status,
                  std::chrono::duration<double, std::milli>(e.duration).count(), e.retries);
    std::string line;
    line.reserve(128 + e.target.size());
    line.append("time=").append(stamp);
    line.append(" client=").append(e.client.empty() ? "-" : e.client);
    line.append(" method=").append(e.method);
    // A request target holds no space or control character (Beast refuses
    // them), so it needs no quoting.
    line.append(" path=").append(e.target);
    line.append(" key=").append(std::to_string(e.key));
    line.append(" replica=").append(e.replica.empty() ? "-" : e.replica);
    line.append(tail);
    return line;
}

void AccessLog::record(const Entry& e) {
    std::string line = format(e, std::chrono::system_clock::now());
    {
        std::lock_guard lock(mutex_);
        if (pending_.size() >= max_pending_) {
            ++dropped_;
            return;
        }
        pending_.push_back(std::move(line));
    }
    wake_.notify_one();
}

std::uint64_t AccessLog::dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
}

void AccessLog::run() {
    std::vector<std::string> batch;
    std::string buffer;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
            batch.swap(pending_);
            if (batch.empty() && stopping_) return;
        }
        buffer.clear();
        for (const auto& line : batch) buffer += line;
        std::fwrite(buffer.data(), 1, buffer.size(), out_);
        std::fflush(out_);
        batch.clear();
        if (buffer.capacity() > (1u << 20)) std::string().swap(buffer);
    }
}

}  // namespace ringlb
