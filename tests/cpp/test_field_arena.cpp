#include "ringlb/field_arena.hpp"

#include <boost/beast/http/parser.hpp>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "ringlb/wire_format.hpp"

namespace {

namespace http = boost::beast::http;
using ringlb::ArenaRequest;
using ringlb::ArenaResponse;
using ringlb::FieldAllocator;
using ringlb::FieldArena;

using Parser = http::request_parser<http::string_body, FieldAllocator<char>>;
using ResponseParser = http::response_parser<http::string_body, FieldAllocator<char>>;

// What the router does per request: the last message goes back into a new
// parser, which parses the next one into it, and is released again.
ArenaRequest parse_into(ArenaRequest&& last, std::string_view bytes) {
    Parser p(std::move(last));
    p.eager(true);
    boost::beast::error_code ec;
    p.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(p.is_done());
    return p.release();
}

ArenaRequest fresh(FieldArena& arena) {
    return ArenaRequest(std::piecewise_construct, std::make_tuple(),
                        std::make_tuple(FieldAllocator<char>(&arena)));
}

TEST(FieldArena, AWarmArenaTakesNothingFromTheHeap) {
    FieldArena arena;
    ArenaRequest req = fresh(arena);
    // Beast sets a new target before it frees the old one, so two messages
    // warm the arena up.
    for (int i = 0; i < 2; ++i) {
        req = parse_into(std::move(req), "GET /home?id=123456 HTTP/1.1\r\nHost: 127.0.0.1:5000\r\n\r\n");
    }
    const std::size_t warm = arena.heap_allocations();
    EXPECT_GT(warm, 0u);  // the target and the Host field
    for (int i = 0; i < 100; ++i) {
        req = parse_into(std::move(req), "GET /home?id=" + std::to_string(100000 + i) +
                                             " HTTP/1.1\r\nHost: 127.0.0.1:5000\r\n\r\n");
        ASSERT_EQ(req.target(), "/home?id=" + std::to_string(100000 + i));
        ASSERT_EQ(req[http::field::host], "127.0.0.1:5000");
    }
    EXPECT_EQ(arena.heap_allocations(), warm);
}

TEST(FieldArena, TheAllocatorTravelsWithTheFields) {
    FieldArena arena;
    ArenaRequest a = fresh(arena);
    a.set("X-One", "1");
    ArenaRequest b;  // no arena: the heap
    EXPECT_EQ(b.get_allocator().arena(), nullptr);
    b = std::move(a);
    EXPECT_EQ(b.get_allocator().arena(), &arena);
    EXPECT_EQ(b["X-One"], "1");
    // A message without an arena works as Beast's own does.
    ArenaRequest heap;
    heap.method(http::verb::get);
    heap.target("/x");
    heap.set(http::field::host, "h");
    std::string out;
    ringlb::WireFormat::write(heap, out);
    EXPECT_EQ(out, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
}

TEST(FieldArena, AnswersParsedIntoTheArenaSerializeAsBeastWould) {
    FieldArena arena;
    ArenaResponse res(std::piecewise_construct, std::make_tuple(),
                      std::make_tuple(FieldAllocator<char>(&arena)));
    const std::string wire =
        "HTTP/1.1 200 OK\r\nServer: ringlb-replica\r\nContent-Type: application/json\r\n"
        "Content-Length: 2\r\n\r\n{}";
    std::size_t warm = 0;
    for (int i = 0; i < 20; ++i) {
        res.body().clear();  // as the router does: the body keeps its capacity
        ResponseParser p(std::move(res));
        p.eager(true);
        boost::beast::error_code ec;
        p.put(boost::asio::buffer(wire), ec);
        ASSERT_FALSE(ec) << ec.message();
        res = p.release();
        res.set("X-Ringlb-Replica", "Server1");
        std::string out;
        ringlb::WireFormat::write(res, out);
        EXPECT_EQ(out, wire.substr(0, wire.size() - 4) + "X-Ringlb-Replica: Server1\r\n\r\n{}");
        if (i == 1) warm = arena.heap_allocations();  // two warm it up, as above
    }
    EXPECT_EQ(arena.heap_allocations(), warm);
}

TEST(FieldArena, KeepsABoundedAmountAndReturnsTheRestToTheHeap) {
    FieldArena arena;
    std::vector<void*> blocks;
    const std::size_t size = 64;
    const std::size_t n = FieldArena::max_kept_bytes / size + 10;
    for (std::size_t i = 0; i < n; ++i) blocks.push_back(arena.allocate(size));
    EXPECT_EQ(arena.heap_allocations(), n);
    for (void* b : blocks) arena.deallocate(b, size);
    // Only max_kept_bytes were kept: taking n again needs 10 from the heap.
    blocks.clear();
    for (std::size_t i = 0; i < n; ++i) blocks.push_back(arena.allocate(size));
    EXPECT_EQ(arena.heap_allocations(), n + 10);
    for (void* b : blocks) arena.deallocate(b, size);
    // Larger than the largest class: always the heap.
    void* big = arena.allocate(FieldArena::granule * FieldArena::classes + 1);
    arena.deallocate(big, FieldArena::granule * FieldArena::classes + 1);
    void* again = arena.allocate(FieldArena::granule * FieldArena::classes + 1);
    arena.deallocate(again, FieldArena::granule * FieldArena::classes + 1);
    EXPECT_EQ(arena.heap_allocations(), n + 12);
}

TEST(FieldArena, ABlockServesAnySizeOfItsClass) {
    FieldArena arena;
    void* a = arena.allocate(33);  // class 64
    arena.deallocate(a, 33);
    void* b = arena.allocate(64);
    EXPECT_EQ(a, b);
    std::memset(b, 0xab, 64);  // the whole class size is usable (ASan checks)
    arena.deallocate(b, 64);
    EXPECT_EQ(arena.heap_allocations(), 1u);
}

}  // namespace
