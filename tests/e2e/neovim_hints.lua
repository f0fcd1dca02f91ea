-- Headless Neovim 0.11 as a real LSP client: start perfhint, read the inlay hints, edit, :write, read again.
-- Inputs come from the environment (PERFHINT_NVIM_CMD as JSON, PERFHINT_NVIM_BUNDLE, PERFHINT_NVIM_OUT);
-- the result is one JSON object written to PERFHINT_NVIM_OUT, asserted on by test_neovim.py.
local out_path = vim.env.PERFHINT_NVIM_OUT
local result = { events = {} }

local function finish()
  vim.fn.writefile({ vim.json.encode(result) }, out_path)
  vim.cmd('qa!')
end

local ok, err = pcall(function()
  -- Count the server's refresh requests, then let Neovim's own handler re-ask for hints.
  local refreshes = 0
  local default_refresh = vim.lsp.handlers['workspace/inlayHint/refresh']
  vim.lsp.handlers['workspace/inlayHint/refresh'] = function(...)
    refreshes = refreshes + 1
    return default_refresh(...)
  end

  local client_id = vim.lsp.start({
    name = 'perfhint',
    cmd = vim.json.decode(vim.env.PERFHINT_NVIM_CMD),
    root_dir = vim.fn.getcwd(),
    settings = { perfhint = { bundlePath = vim.env.PERFHINT_NVIM_BUNDLE, debounceMs = 50 } },
  })
  result.client_id = client_id
  vim.lsp.inlay_hint.enable(true, { bufnr = 0 })

  local function labels()
    local out = {}
    for _, item in ipairs(vim.lsp.inlay_hint.get({ bufnr = 0 })) do
      local label = item.inlay_hint.label
      if type(label) == 'table' then
        local text = ''
        for _, part in ipairs(label) do text = text .. part.value end
        label = text
      end
      table.insert(out, { line = item.inlay_hint.position.line, label = label })
    end
    table.sort(out, function(a, b) return a.line < b.line end)
    return out
  end

  local function settled(hints)
    if #hints == 0 then return false end
    for _, hint in ipairs(hints) do
      if hint.label:find('calculating', 1, true) or hint.label:sub(-4) == ' …' then return false end
    end
    return true
  end

  result.settled_before = vim.wait(20000, function() return settled(labels()) end, 50)
  result.before = labels()

  -- Change the first function's body and save: the server must compute and ask Neovim to refresh.
  vim.api.nvim_buf_set_lines(0, 1, 2, false, { '    return [1] * (2 * n)' })
  local refreshes_at_write = refreshes
  vim.cmd('write')
  result.settled_after = vim.wait(20000, function()
    return refreshes > refreshes_at_write and settled(labels())
  end, 50)
  -- A new number for the edited function, if the model gives one (a tiny random model may not).
  local before_first = result.before[1] and result.before[1].label or ''
  vim.wait(3000, function() local hints = labels(); return hints[1] ~= nil and hints[1].label ~= before_first end, 50)
  result.after = labels()
  result.refreshes_after_write = refreshes - refreshes_at_write
end)

if not ok then result.error = tostring(err) end
finish()
