-- POST /auth/refresh with a never-used refresh token each time.  Rotation gives one
-- back with every success, so each thread chains them: a request takes the newest
-- token a response handed back, or else the next one from its share of the pool.
-- A request that finds both empty ("starved") sends an invalid token, which shows
-- up as a non-2xx response.  Arguments: PATH TOKEN_FILE NTHREADS
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local path
local headers = { ["Content-Type"] = "application/json" }
local pool = {}
local pool_next = 1
local returned = {}
starved = 0

function init(args)
   path = args[1]
   pool = common.share(common.read_lines(args[2]), thread_index, tonumber(args[3]))
end

function request()
   local token = table.remove(returned)
   if token == nil then
      token = pool[pool_next]
      if token == nil then
         starved = starved + 1
         token = "starved"
      else
         pool_next = pool_next + 1
      end
   end
   return wrk.format("POST", path, headers, '{"refresh_token":"' .. token .. '"}')
end

function response(status, _headers, body)
   if status == 200 then
      local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if token then
         table.insert(returned, token)
      end
   end
end
