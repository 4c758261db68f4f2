-- Shared by the benchmark scripts (loaded with dofile): thread numbering, reading a
-- pool file, and done(), which prints one machine-readable line for benchmarks/run.py:
--   BENCH_JSON {"requests": ..., "requests_per_s": ..., "latency_ms": {...}, ...}

local common = {}
local threads = {}

-- Runs in the main Lua state once per thread, before that thread's init().
function setup(thread)
   thread:set("thread_index", #threads)
   table.insert(threads, thread)
end

-- The lines of a file, without blanks.
function common.read_lines(path)
   local lines = {}
   local file = assert(io.open(path, "r"))
   for line in file:lines() do
      if line ~= "" then
         table.insert(lines, line)
      end
   end
   file:close()
   return lines
end

-- This thread's share of a list: every nthreads-th item, so no two threads share one.
function common.share(items, thread_index, nthreads)
   local mine = {}
   for i = thread_index + 1, #items, nthreads do
      table.insert(mine, items[i])
   end
   return mine
end

local function ms(microseconds)
   return microseconds / 1000.0
end

function done(summary, latency, requests)
   local starved = 0
   for _, thread in ipairs(threads) do
      starved = starved + (thread:get("starved") or 0)
   end
   local seconds = summary.duration / 1e6
   local errors = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"seconds":%.6f,"requests_per_s":%.3f,'
         .. '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"max":%.3f,"mean":%.3f},'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
         .. '"starved":%d}\n',
      summary.requests, seconds, summary.requests / seconds,
      ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
      ms(latency.max), ms(latency.mean),
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      starved))
end

return common
