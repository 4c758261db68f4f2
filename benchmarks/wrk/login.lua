-- POST JSON logins, walking through this thread's share of the seeded accounts.
-- Arguments: PATH LOGINS_FILE PASSWORD NTHREADS  (one username or email a line)
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local prepared = {}
local next_index = 0

function init(args)
   local path, password = args[1], args[3]
   local headers = { ["Content-Type"] = "application/json" }
   local logins = common.share(common.read_lines(args[2]), thread_index, tonumber(args[4]))
   for _, login in ipairs(logins) do
      local body = '{"username":"' .. login .. '","password":"' .. password .. '"}'
      table.insert(prepared, wrk.format("POST", path, headers, body))
   end
   assert(#prepared > 0, "no logins for this thread in " .. args[2])
end

function request()
   next_index = next_index % #prepared + 1
   return prepared[next_index]
end
