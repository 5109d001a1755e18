# Copyright: (c) 2026, berth.ports contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The port map as one self-contained HTML page (issue 11).

No network fetch of any kind: CSS and SVG are inline, the only script is a
few lines that sort the table and record layout facts on ``<html
data-layout>`` for the browser test. Works from ``file://``.

Each row of the map (one host, or hosts whose allocations are identical,
with their count) has a strip per protocol: the range drawn left to right,
each allocation a block in its owner's colour (see ``port_map.owner_color``)
whose SVG ``<title>`` names ports, protocol, owner, kind and since when.
Drifting owners carry an orange bar on top, ports held twice a purple one,
stray listeners a black tick the full height of the strip, other listener
conflicts a red one. The table below lists the same facts, one line per
allocation or listener per row, sortable by any column.
"""

from __future__ import annotations

import html
from typing import Any, List, Optional, Sequence, Tuple

from ansible_collections.berth.ports.plugins.module_utils.port_range import PortRange
from ansible_collections.berth.ports.plugins.module_utils.request import PROTOCOLS
from ansible_collections.berth.ports.plugins.plugin_utils.fleet_surveys import Mark
from ansible_collections.berth.ports.plugins.plugin_utils.port_map import MapRow, PortMap, Segment, port_map_summary

# Hosts named in a collapsed row's hover text before "and N more".
_NAMED_HOSTS = 40

_CSS = """
*{box-sizing:border-box}
body{margin:0;padding:12px 16px;color:#1d232a;background:#fff;
font:13px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
h1{font-size:18px;margin:0 0 4px}
h2{font-size:15px;margin:18px 0 6px}
.summary span{margin-right:12px;white-space:nowrap}
.bad{color:#b3261e;font-weight:600}
.ok{color:#1e7b34}
.legend{display:flex;flex-wrap:wrap;gap:4px 12px;margin:8px 0;max-height:9em;overflow:auto}
.legend span{white-space:nowrap}
.sw{display:inline-block;width:11px;height:11px;border:1px solid #0003;vertical-align:-1px;margin-right:3px}
.key .sw{border:0}
.map{border-top:1px solid #ccd}
.row{content-visibility:auto;contain-intrinsic-size:auto 32px;display:grid;
grid-template-columns:minmax(9rem,15rem) minmax(0,1fr);gap:8px;padding:3px 0;border-bottom:1px solid #eef}
.label{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.n{display:inline-block;min-width:2.6em;padding:0 4px;margin-right:4px;border-radius:8px;background:#e8ecf4;text-align:center;font-variant-numeric:tabular-nums}
.strips{min-width:0;overflow:hidden}
.strip{display:block;width:100%;height:11px;margin:1px 0;background:#f1f3f6}
.axis{display:grid;grid-template-columns:minmax(9rem,15rem) minmax(0,1fr);gap:8px;font-size:11px;color:#667}
.ticks{position:relative;height:14px;overflow:hidden}
.ticks span{position:absolute;top:0;transform:translateX(-50%)}
.ticks span:first-child{transform:none}
.ticks span:last-child{transform:translateX(-100%)}
.p{font-size:10px;color:#778;margin-left:4px}
.wrap{overflow-x:auto;max-width:100%;content-visibility:auto;contain-intrinsic-size:auto 3000px}
table{border-collapse:collapse;font-size:12px;min-width:60%}
th,td{padding:2px 8px;border-bottom:1px solid #eef;text-align:left;white-space:nowrap}
th{position:sticky;top:0;background:#f6f7fa;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.hosts{max-width:22rem;overflow:hidden;text-overflow:ellipsis}
ul{margin:4px 0;padding-left:20px}
"""

# Sorting the table, and the facts the browser test reads back from the DOM.
_SCRIPT = """
(function(){
var t=document.getElementById('facts');
if(t){t.tHead.addEventListener('click',function(e){
var th=e.target.closest('th');if(!th)return;
var i=th.cellIndex,num=th.dataset.type==='num',asc=th.getAttribute('aria-sort')!=='ascending';
Array.prototype.forEach.call(t.tHead.rows[0].cells,function(c){c.removeAttribute('aria-sort')});
th.setAttribute('aria-sort',asc?'ascending':'descending');
var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows);
rows.sort(function(x,y){var a=x.cells[i].dataset.v||x.cells[i].textContent,c=y.cells[i].dataset.v||y.cells[i].textContent;
var r=num?(+a)-(+c):a.localeCompare(c);return asc?r:-r});
rows.forEach(function(r){b.appendChild(r)});});}
window.addEventListener('load',function(){
var d=document.documentElement;void d.offsetHeight;var ms=Math.round(performance.now());
var over=0,strips=document.querySelectorAll('.strips');
for(var k=0;k<strips.length;k++){over=Math.max(over,strips[k].scrollWidth-strips[k].clientWidth)}
var rows=document.querySelectorAll('.map .row'),hosts=0;
for(var j=0;j<rows.length;j++){hosts+=+rows[j].dataset.count}
d.setAttribute('data-layout',JSON.stringify({rows:rows.length,hosts:hosts,strips:document.querySelectorAll('.map svg.strip').length,
stripOverflow:over,pageOverflow:d.scrollWidth-d.clientWidth,width:d.clientWidth,
drift:document.querySelectorAll('.map rect.drift').length,strays:document.querySelectorAll('.map rect.stray').length,
tableRows:t?t.tBodies[0].rows.length:0,loadMs:ms,checkedMs:Math.round(performance.now())}));
});
})();
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float) -> str:
    text = ("%.3f" % value).rstrip("0").rstrip(".")
    return text or "0"


def _ports_text(first: int, last: int) -> str:
    return "port %d" % first if first == last else "ports %d-%d" % (first, last)


def _since_text(segment: Segment, count: int) -> str:
    since, until = segment.since, segment.until
    if not since:
        return "since unknown"
    if count == 1 or since == until:
        return "since %s" % since
    return "since %s (earliest of %d hosts; latest %s)" % (since, count, until)


def _hosts_text(hosts: Sequence[str], most: int = _NAMED_HOSTS) -> str:
    named = ", ".join(hosts[:most])
    if len(hosts) > most:
        named += " and %d more" % (len(hosts) - most)
    return named


def _flags(segment: Segment) -> List[str]:
    flags = []
    if segment.drift:
        flags.append("drift")
    if segment.double:
        flags.append("held twice")
    elif segment.held_with:
        flags.append("shared")
    return flags


def _segment_title(segment: Segment, count: int) -> str:
    h = segment.holding
    parts = ["%s/%s" % (_ports_text(h.first, h.last), h.proto), h.owner, h.kind + (", shared" if h.shared else ""),
             _since_text(segment, count)]
    others = ", ".join(segment.held_with)
    parts.extend(
        {"drift": "DRIFT: this owner holds other ports on other hosts",
         "held twice": "HELD TWICE: %s holds some of these ports too" % others,
         "shared": "shared with %s" % others}[flag]
        for flag in _flags(segment)
    )
    return " \u00b7 ".join(parts)


def _mark_title(mark: Mark) -> str:
    who = "unit %s" % mark.unit if mark.unit else "an unknown process"
    if mark.type == "unallocated":
        return "port %d/%s \u00b7 STRAY: %s listens without an allocation" % (mark.port, mark.proto, who)
    if mark.type == "foreign_listener":
        return "port %d/%s \u00b7 %s listens on %s's port" % (mark.port, mark.proto, who, mark.owner)
    return "port %d/%s \u00b7 %s listens on %s's port (in use; judge whether it is %s's own)" % (
        mark.port, mark.proto, who, mark.owner, mark.owner)


def _strip(row: MapRow, proto: str, bounds: PortRange, colors: dict) -> str:
    size = bounds.size
    least = max(1.0, size / 400.0)  # marks stay visible at any range size
    out = ['<svg class="strip" data-proto="%s" viewBox="0 0 %d 12" preserveAspectRatio="none" role="img" '
           'aria-label="%s %s">' % (proto, size, proto, _e(str(bounds)))]
    for segment in row.segments:
        h = segment.holding
        if h.proto != proto or not h.range.overlaps(bounds):
            continue
        first, last = max(h.first, bounds.first), min(h.last, bounds.last)
        x, width = first - bounds.first, last - first + 1
        title = _e(_segment_title(segment, row.count))
        out.append('<rect x="%d" y="0" width="%d" height="12" fill="%s" data-owner="%s"><title>%s</title></rect>'
                   % (x, width, colors[h.owner], _e(h.owner), title))
        # The bars let the pointer through to the allocation, whose title tells the flags.
        if segment.drift:  # a top bar
            out.append('<rect class="drift" x="%d" y="0" width="%s" height="3" fill="#f08c00" pointer-events="none"/>'
                       % (x, _num(max(width, least))))
        if segment.double or segment.held_with:
            css, color = ("double", "#7b2cbf") if segment.double else ("shared", "#8d99ae")
            out.append('<rect class="%s" x="%d" y="9" width="%s" height="3" fill="%s" pointer-events="none"/>'
                       % (css, x, _num(max(width, least)), color))
    for mark in row.marks:
        if mark.proto != proto or not bounds.contains(mark.port):
            continue
        css = "stray" if mark.type == "unallocated" else "conflict"
        width = max(1.0, least)
        x = max(0.0, min(mark.port - bounds.first + 0.5 - width / 2, size - width))
        out.append('<rect class="%s" x="%s" y="0" width="%s" height="12" fill="%s"><title>%s</title></rect>'
                   % (css, _num(x), _num(width), "#000" if css == "stray" else "#d00000", _e(_mark_title(mark))))
    out.append("</svg>")
    return "".join(out)


def _row(row: MapRow, index: int, bounds: PortRange, colors: dict) -> str:
    first = row.hosts[0]
    label = _e(first) if row.count == 1 else "%s …" % _e(first)
    free = " \u00b7 ".join("%s %d free" % (proto, row.free[proto]) for proto in PROTOCOLS)
    title = "%s \u2014 %s" % (_hosts_text(row.hosts), free)
    strips = "".join(_strip(row, proto, bounds, colors) for proto in PROTOCOLS)
    flagged = any(s.drift or s.double for s in row.segments) or bool(row.marks)
    return ('<div class="row%s" id="r%d" data-count="%d"><div class="label" title="%s"><span class="n">\u00d7%d</span>%s</div>'
            '<div class="strips">%s</div></div>'
            % (" flagged" if flagged else "", index, row.count, _e(title), row.count, label, strips))


def _axis(bounds: PortRange) -> str:
    steps = 4
    ticks = []
    for i in range(steps + 1):
        port = min(bounds.last, bounds.first + bounds.size * i // steps)
        left = 100.0 * (port - bounds.first) / bounds.size
        ticks.append('<span style="left:%s%%">%d</span>' % (_num(left), port))
    protos = "".join('<span class="p">%s</span>' % p for p in PROTOCOLS)
    return ('<div class="axis"><div>hosts <small>(strips: %s, top to bottom)</small></div><div class="ticks">%s</div></div>'
            % (protos, "".join(ticks)))


def _table(port_map: PortMap) -> str:
    """One line per distinct allocation or listener of the fleet, with the hosts that have it.

    Lines, not hosts: at 500 hosts a line per host and allocation would be
    thousands of table rows, which a browser lays out in seconds.
    """
    head = [("Owner", "str"), ("Proto", "str"), ("Ports", "num"), ("Kind", "str"), ("Hosts", "num"),
            ("Host names", "str"), ("Since", "str"), ("Flags", "str"), ("Map rows", "str")]
    lines = {}  # type: dict
    for index, row in enumerate(port_map.rows):
        for segment in row.segments:
            line = lines.setdefault(("a", segment.holding), {"hosts": [], "rows": [], "since": [], "flags": set()})
            line["hosts"].extend(row.hosts)
            line["rows"].append(index)
            if segment.since:
                line["since"].append(segment.since)
            line["flags"].update(_flags(segment))
        for mark in row.marks:
            line = lines.setdefault(("m", mark), {"hosts": [], "rows": [], "since": [], "flags": set()})
            line["hosts"].extend(row.hosts)
            line["rows"].append(index)
            line["flags"].add("stray listener" if mark.type == "unallocated" else mark.type.replace("_", " "))
    out = ['<div class="wrap"><table id="facts"><thead><tr>']
    out.extend('<th data-type="%s">%s</th>' % (kind, name) for name, kind in head)
    out.append("</tr></thead><tbody>")

    def table_order(item: Tuple[Any, Any]) -> Tuple[Any, ...]:
        what, fact = item[0]
        return (fact.proto, fact.port if what == "m" else fact.first, what)

    for (what, fact), line in sorted(lines.items(), key=table_order):
        hosts = sorted(line["hosts"])
        names = '<td class="hosts" title="%s">%s</td>' % (_e(_hosts_text(hosts)), _e(_hosts_text(hosts, 2)))
        rows = " ".join('<a href="#r%d">%d</a>' % (i, i + 1) for i in line["rows"][:12]) + (
            " \u2026" if len(line["rows"]) > 12 else "")
        if what == "a":
            h = fact
            ports = str(h.range) if h.last > h.first else str(h.first)
            kind = h.kind + (", shared" if h.shared else "")
            owner, since = h.owner, min(line["since"]) if line["since"] else ""
            flags = ", ".join(sorted(line["flags"]))
            first = h.first
        else:
            ports, first = str(fact.port), fact.port
            owner, kind, since = fact.owner or "\u2014", "listener" + (" (%s)" % fact.unit if fact.unit else ""), ""
            flags = ", ".join(sorted(line["flags"]))
        css = ' class="bad"' if what == "m" or "drift" in flags or "held twice" in flags else ""
        out.append('<tr><td>%s</td><td>%s</td><td class="num" data-v="%d">%s</td><td>%s</td><td class="num">%d</td>%s'
                   '<td>%s</td><td%s>%s</td><td>%s</td></tr>'
                   % (_e(owner), fact.proto, first, ports, _e(kind), len(hosts), names, _e(since), css, _e(flags), rows))
    out.append("</tbody></table></div>")
    return "".join(out)


def _findings(port_map: PortMap) -> str:
    out = []
    if port_map.drift:
        out.append("<h2>Owners that drift</h2><ul>")
        for drift in port_map.drift:
            variants = "; ".join("%s on %d host%s (%s)" % (ranges, len(hosts), "" if len(hosts) == 1 else "s",
                                                           _hosts_text(hosts, 8))
                                 for ranges, hosts in drift.variants)
            if drift.expected is not None:
                variants = "the registry holds %s; %s" % (drift.expected, variants)
            out.append('<li class="drift-item"><b>%s/%s</b>: %s</li>' % (_e(drift.owner), drift.proto, _e(variants)))
        out.append("</ul>")
    if port_map.strays:
        out.append("<h2>Stray listeners</h2><ul>")
        for stray in port_map.strays:
            who = ", ".join(p for p in (("unit %s" % stray.unit) if stray.unit else "",
                                        ("pid %d" % stray.pid) if stray.pid is not None else "") if p) or "process unknown"
            out.append('<li class="stray-item">%s: port %d/%s, %s</li>' % (_e(stray.host), stray.port, stray.proto, _e(who)))
        out.append("</ul>")
    if port_map.doubles:
        grouped = {}  # type: dict
        for double in port_map.doubles:
            grouped.setdefault((double.shared, double.proto, double.first, double.last, double.owners), []).append(double.host)
        out.append("<h2>Ports held twice</h2><ul>")
        for (shared, proto, first, last, owners), hosts in sorted(grouped.items()):
            out.append('<li class="%s">%s/%s by %s%s on %d host%s (%s)</li>' % (
                "shared-item" if shared else "double-item bad", _e(_ports_text(first, last)), proto, _e(", ".join(owners)),
                ", every holder shared" if shared else "", len(hosts), "" if len(hosts) == 1 else "s", _e(_hosts_text(hosts, 8))))
        out.append("</ul>")
    if port_map.unread:
        out.append("<h2>Hosts not read</h2><ul>")
        out.extend('<li class="unread-item">%s: %s</li>' % (_e(host), _e(why)) for host, why in port_map.unread)
        out.append("</ul>")
    return "".join(out)


def render_port_map(port_map: PortMap, title: str = "berth.ports map", generated: Optional[str] = None) -> str:
    """The whole page as a string."""
    summary = port_map_summary(port_map)
    colors = {owner.name: owner.color for owner in port_map.owners}

    def count(n: int, what: str, bad: bool) -> str:
        css = "bad" if bad and n else "ok" if bad else ""
        return '<span class="%s">%d %s</span>' % (css, n, what)

    facts = [
        '<span>%d host%s in %d row%s</span>' % (summary["hosts"], "" if summary["hosts"] == 1 else "s",
                                                summary["rows"], "" if summary["rows"] == 1 else "s"),
        "<span>range %s</span>" % _e(summary["range"]),
        "<span>%d owner%s</span>" % (summary["owners"], "" if summary["owners"] == 1 else "s"),
        count(len(summary["drift"]), "drifting", True),
        count(summary["strays"], "stray listener%s" % ("" if summary["strays"] == 1 else "s"), True),
        count(summary["doubles"], "held twice", True),
        "<span>%d shared</span>" % summary["shared"],
    ]
    if summary["unread"]:
        facts.append(count(len(summary["unread"]), "not read", True))
    if generated:
        facts.append("<span>generated %s</span>" % _e(generated))
    legend = "".join(
        '<span title="%s: %d host%s%s"><i class="sw" style="background:%s"></i>%s%s</span>'
        % (_e(o.name), o.hosts, "" if o.hosts == 1 else "s", ", drifts" if o.drift else "", o.color, _e(o.name),
           ' <b class="bad">\u21c4</b>' if o.drift else "")
        for o in port_map.owners
    )
    keys = ('<span><i class="sw" style="background:#f1f3f6;border:1px solid #ccd"></i>free</span>'
            '<span><i class="sw" style="background:#f08c00"></i>drift (top bar)</span>'
            '<span><i class="sw" style="background:#7b2cbf"></i>held twice (bottom bar)</span>'
            '<span><i class="sw" style="background:#8d99ae"></i>shared (bottom bar)</span>'
            '<span><i class="sw" style="background:#000"></i>stray listener</span>'
            '<span><i class="sw" style="background:#d00000"></i>listener on another\'s port</span>')
    rows = "".join(_row(row, index, port_map.bounds, colors) for index, row in enumerate(port_map.rows))
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>%s</title><style>%s</style></head><body>" % (_e(title), _CSS),
        "<header><h1>%s</h1><div class=\"summary\">%s</div></header>" % (_e(title), "".join(facts)),
        '<div class="legend key">%s</div><div class="legend owners">%s</div>' % (keys, legend),
        '<section class="map">%s%s</section>' % (_axis(port_map.bounds), rows),
        _findings(port_map),
        "<h2>Allocations and listeners</h2>",
        _table(port_map),
        "<script>%s</script></body></html>\n" % _SCRIPT,
    ])
