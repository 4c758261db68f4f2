-- GET one path; with a token file, each request carries the next bearer token of
-- this thread's share.  Arguments: PATH [TOKEN_FILE NTHREADS]
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local prepared = {}
local next_index = 0

function init(args)
   local path = args[1]
   if args[2] then
      local tokens = common.share(common.read_lines(args[2]), thread_index, tonumber(args[3]))
      for _, token in ipairs(tokens) do
         table.insert(prepared, wrk.format("GET", path, { Authorization = "Bearer " .. token }))
      end
      assert(#prepared > 0, "no tokens for this thread in " .. args[2])
   else
      table.insert(prepared, wrk.format("GET", path))
   end
end

function request()
   next_index = next_index % #prepared + 1
   return prepared[next_index]
end
