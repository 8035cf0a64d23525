-- Argo CD health check for nbswarm.io/NotebookServer.
-- Reads the status as kstatus does: a status for an older generation, or Reconciling=True, is
-- Progressing; Stalled=True (the server cannot converge without a spec or policy change) is
-- Degraded; a server stopped on purpose is Suspended; Ready=True is Healthy.
local hs = { status = "Progressing", message = "Waiting for the nbswarm operator" }
local generation = obj.metadata and obj.metadata.generation
local status = obj.status
if status == nil then
  return hs
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation)
  return hs
end

local conditions = {}
for _, c in ipairs(status.conditions or {}) do
  -- A condition computed for an older generation says nothing about this one.
  if c.type ~= nil and (generation == nil or c.observedGeneration == nil or c.observedGeneration >= generation) then
    conditions[c.type] = c
  end
end
local function isTrue(t)
  return conditions[t] ~= nil and conditions[t].status == "True"
end
local function say(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback or status.message or ""
end

if isTrue("Stalled") or (status.phase == "Failed" and not isTrue("Reconciling")) then
  hs.status = "Degraded"
  hs.message = say(conditions["Stalled"] or conditions["Ready"])
elseif isTrue("Reconciling") then
  hs.status = "Progressing"
  hs.message = say(conditions["Reconciling"])
elseif status.phase == "Stopped" then
  hs.status = "Suspended"
  hs.message = status.message or "stopped"
elseif isTrue("Ready") then
  hs.status = "Healthy"
  hs.message = status.message or say(conditions["Ready"])
elseif isTrue("Degraded") then
  hs.status = "Degraded"
  hs.message = say(conditions["Degraded"])
else
  hs.message = say(conditions["Ready"])
end
return hs
