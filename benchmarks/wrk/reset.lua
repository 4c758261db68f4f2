-- POST JSON password-reset requests, walking through this thread's share of the
-- seeded addresses.  Arguments: PATH EMAILS_FILE NTHREADS  (one address a line)
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local prepared = {}
local next_index = 0

function init(args)
   local path = args[1]
   local headers = { ["Content-Type"] = "application/json" }
   local emails = common.share(common.read_lines(args[2]), thread_index, tonumber(args[3]))
   for _, email in ipairs(emails) do
      table.insert(prepared, wrk.format("POST", path, headers, '{"email":"' .. email .. '"}'))
   end
   assert(#prepared > 0, "no addresses for this thread in " .. args[2])
end

function request()
   next_index = next_index % #prepared + 1
   return prepared[next_index]
end
