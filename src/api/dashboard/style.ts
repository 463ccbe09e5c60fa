/** The dashboard's stylesheet: one dark theme, no external assets. */
export const STYLE = /* css */ `
  :root { --bg: #0f1115; --card: #181b22; --text: #e6e6e6; --dim: #9aa0aa; --line: #2a2f3a; --free: #23272f; --other: #5c6370; --bad: #e06c75; --accent: #61afef; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--text); }
  header { padding: 12px 20px; border-bottom: 1px solid var(--line); display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: baseline; }
  header h1 { font-size: 16px; margin: 0 8px 0 0; }
  header span { color: var(--dim); }
  header b { color: var(--text); font-weight: 600; }
  main { padding: 16px 20px; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: var(--dim); margin: 18px 0 8px; }
  .gpus { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
  .gpu { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px; }
  .gpu .name { font-weight: 600; }
  .gpu .facts { color: var(--dim); font-size: 12px; margin-top: 6px; }
  .bar { display: flex; height: 18px; border-radius: 4px; overflow: hidden; background: var(--free); margin-top: 8px; }
  .bar div { height: 100%; min-width: 1px; }
  .legend { display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 12px; margin-top: 6px; color: var(--dim); }
  .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
  table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
  th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--dim); font-weight: 500; font-size: 12px; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr:last-child td { border-bottom: 0; }
  .state-ready { color: #98c379; } .state-starting { color: #e5c07b; } .state-stopping { color: var(--dim); }
  .empty { color: var(--dim); padding: 10px 0; }
  #error { display: none; background: #3a1d22; color: #f4c7cc; border: 1px solid var(--bad); border-radius: 6px; padding: 8px 12px; margin-bottom: 12px; }
  #keyform { display: none; margin-bottom: 12px; }
  .node { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px; min-width: 0; }
  .node.local { border-color: #3b4a63; }
  .node.down { border-color: var(--bad); }
  .node.down .known { opacity: .55; }
  .nhead { display: flex; flex-wrap: wrap; align-items: baseline; gap: 2px 8px; }
  .nhead .name { font-weight: 600; overflow-wrap: anywhere; }
  .nhead .seen { margin-left: auto; color: var(--dim); font-size: 12px; }
  .tag { font-size: 11px; color: #61afef; border: 1px solid #3b4a63; border-radius: 9px; padding: 0 6px; }
  .pill { font-size: 12px; font-weight: 600; } .pill.up { color: #98c379; } .pill.down { color: var(--bad); }
  .node .facts { color: var(--dim); font-size: 12px; margin-top: 2px; }
  .node .facts, .node .legend span, .gname b { overflow-wrap: anywhere; min-width: 0; }
  .node .err { margin-top: 6px; padding: 4px 8px; border-radius: 4px; background: #3a1d22; color: #f4c7cc; font-size: 12px; overflow-wrap: anywhere; }
  .ngpu, .ncpu { margin-top: 10px; }
  .ngpu .gname, .ncpu .gname { display: flex; justify-content: space-between; gap: 8px; font-size: 13px; }
  .gname b { font-weight: 400; }
  .gname span { color: var(--dim); font-size: 12px; white-space: nowrap; }
  input { background: var(--card); color: var(--text); border: 1px solid var(--line); border-radius: 4px; padding: 5px 8px; }

  /* the app: tabs, pages, shared controls */
  header { align-items: center; }
  header .facts-bar { display: flex; flex-wrap: wrap; gap: 4px 14px; margin-left: auto; font-size: 12px; }
  header nav { display: flex; gap: 2px; margin-right: 10px; }
  header nav a { color: var(--dim); text-decoration: none; padding: 4px 10px; border-radius: 6px; font-size: 13px; }
  header nav a:hover { color: var(--text); background: var(--card); }
  header nav a.active { color: var(--text); background: var(--card); box-shadow: inset 0 -2px 0 var(--accent); }
  .page { display: none; }
  .page.active { display: block; }
  button { background: #243042; color: var(--text); border: 1px solid #34465f; border-radius: 5px; padding: 5px 12px; font: inherit; cursor: pointer; }
  button:hover { background: #2c3b52; }
  button:disabled { opacity: .5; cursor: default; }
  button.primary { background: #2f5d8a; border-color: #3d73a8; }
  button.primary:hover { background: #376ba0; }
  button.danger { background: #3a2327; border-color: #5c3138; }
  button.danger:hover { background: #4a2a30; }
  button.small { padding: 2px 9px; font-size: 12px; }
  select, textarea { background: var(--card); color: var(--text); border: 1px solid var(--line); border-radius: 4px; padding: 5px 8px; font: inherit; }
  input:focus, select:focus, textarea:focus { outline: 1px solid var(--accent); border-color: var(--accent); }
  .toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 12px; margin: 4px 0 12px; }
  .toolbar label { color: var(--dim); font-size: 12px; display: flex; align-items: center; gap: 6px; }
  .hint { color: var(--dim); font-size: 12px; }
  .muted { color: var(--dim); }
  .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
  .badge { display: inline-block; font-size: 11px; padding: 0 7px; border-radius: 9px; border: 1px solid var(--line); color: var(--dim); }
  .badge.ok { color: #98c379; border-color: #3f5a33; } .badge.err { color: var(--bad); border-color: #5c3138; } .badge.warn { color: #e5c07b; border-color: #5e5233; }
  .badge.live { color: #98c379; border-color: #3f5a33; }
  .badge.live::before { content: ''; display: inline-block; width: 6px; height: 6px; border-radius: 50%; background: #98c379; margin-right: 5px; vertical-align: 1px; animation: pulse 1.6s infinite; }
  @keyframes pulse { 50% { opacity: .3; } }
  tr.clickable { cursor: pointer; }
  tr.clickable:hover td { background: #1e222b; }
  tr.selected td { background: #1f2a3a !important; }
  tr.fresh td { animation: fresh 1.8s ease-out; }
  @keyframes fresh { from { background: #24364d; } to { background: transparent; } }
  #rq-table th, #rq-table td { padding: 6px 8px; font-size: 13px; }
  td.wrap { white-space: normal; overflow-wrap: anywhere; }
  .split { display: grid; grid-template-columns: minmax(0, 1fr) 360px; gap: 14px; align-items: start; }
  @media (max-width: 1100px) { .split { grid-template-columns: 1fr; } }
  .panel { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 0; }
  .panel h3 { margin: 0 0 8px; font-size: 14px; }
  .kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; font-size: 13px; }
  .kv dt { color: var(--dim); } .kv dd { margin: 0; overflow-wrap: anywhere; font-variant-numeric: tabular-nums; }
  pre.body { background: #12151b; border: 1px solid var(--line); border-radius: 6px; padding: 8px; max-height: 260px; overflow: auto; white-space: pre-wrap; overflow-wrap: anywhere; margin: 6px 0 0; }
  .scroll { max-height: calc(100vh - 190px); overflow: auto; border-radius: 8px; }
  .scroll table { border-radius: 0; }
  .scroll thead th { position: sticky; top: 0; background: var(--card); z-index: 1; }
  /* playground */
  .chat { display: flex; flex-direction: column; gap: 10px; min-height: 260px; max-height: calc(100vh - 300px); overflow: auto; padding: 4px 2px 8px; }
  .msg { max-width: 82%; padding: 9px 12px; border-radius: 10px; white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.45; }
  .msg.user { align-self: flex-end; background: #2a3f5c; border: 1px solid #35507a; }
  .msg.assistant { align-self: flex-start; background: var(--card); border: 1px solid var(--line); }
  .msg.error { align-self: flex-start; background: #3a1d22; border: 1px solid var(--bad); color: #f4c7cc; }
  .msg .think { color: var(--dim); font-style: italic; border-left: 2px solid var(--line); padding-left: 8px; margin-bottom: 6px; font-size: 12px; }
  .msg .stats { color: var(--dim); font-size: 11px; margin-top: 6px; border-top: 1px solid var(--line); padding-top: 5px; white-space: normal; }
  .msg .caret::after { content: '▍'; color: var(--accent); animation: pulse 1s infinite; }
  .composer { display: flex; gap: 8px; margin-top: 10px; }
  .composer textarea { flex: 1; min-height: 58px; resize: vertical; }
  .composer .buttons { display: flex; flex-direction: column; gap: 6px; }
  .empty-chat { color: var(--dim); margin: auto; text-align: center; max-width: 460px; }
  /* logs */
  .logview { background: #0b0d11; border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; height: calc(100vh - 190px); min-height: 300px; overflow: auto; }
  .logview div { white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.5; }
  .logview .w { color: #e5c07b; } .logview .e { color: var(--bad); } .logview .i { color: var(--text); } .logview .d { color: var(--dim); }
  .logview .new { animation: fresh 1.2s ease-out; }
  /* plan */
  .verdict { font-size: 15px; margin: 4px 0 10px; }
  .verdict b { color: #98c379; } .verdict.no b { color: var(--bad); }
  .gpu.chosen { border-color: #3f5a33; box-shadow: 0 0 0 1px #3f5a33 inset; }
  .gpu .pick { float: right; font-size: 11px; color: #98c379; border: 1px solid #3f5a33; border-radius: 9px; padding: 0 7px; }
  .bar .would { background: repeating-linear-gradient(135deg, #98c379 0 6px, #7ea863 6px 12px); }
  .bar .evicted { opacity: .45; background-image: repeating-linear-gradient(135deg, transparent 0 4px, rgba(0,0,0,.45) 4px 8px) !important; }
  .err { margin-top: 6px; padding: 6px 9px; border-radius: 4px; background: #3a1d22; color: #f4c7cc; font-size: 12px; overflow-wrap: anywhere; }
  .toast { position: fixed; right: 18px; bottom: 18px; max-width: 460px; background: #3a1d22; color: #f4c7cc; border: 1px solid var(--bad); border-radius: 6px; padding: 8px 12px; display: none; z-index: 5; }
  .toast.ok { background: #1d3a25; color: #c9f0cf; border-color: #3f5a33; }
`;
