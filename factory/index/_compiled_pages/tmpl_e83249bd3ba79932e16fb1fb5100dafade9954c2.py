from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'home'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    parent_template = None
    pass
    parent_template = environment.get_template('base', 'home')
    for name, parent_block in parent_template.blocks.items():
        context.blocks.setdefault(name, []).append(parent_block)
    yield from parent_template.root_render_func(context)

def block_title(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    _block_vars = {}
    pass
    yield 'Artifact factory index'

def block_main(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    _block_vars = {}
    l_0_base_url = resolve('base_url')
    l_0_tuf = resolve('tuf')
    l_0_count = resolve('count')
    l_0_generated = resolve('generated')
    l_0_rows = resolve('rows')
    l_0_status = resolve('status')
    try:
        t_1 = environment.filters['format']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'format' found.")
    try:
        t_2 = environment.tests['none']
    except KeyError:
        @internalcode
        def t_2(*unused):
            raise TemplateRuntimeError("No test named 'none' found.")
    pass
    yield '\n<h1>Approved components</h1>\n<p>Every file here was built from verified upstream source in an isolated,\nnetwork-less builder, and carries signed provenance and an SBOM.\nInstall with <code>pip install --index-url '
    yield escape(environment.finalize((undefined(name='base_url') if l_0_base_url is missing else l_0_base_url)))
    yield '/simple/ NAME</code>.\nTrust material: <a href=".well-known/factory/">/.well-known/factory/</a>.</p>\n<p>Verify with the stock Sigstore client: <code>sigstore --trust-config trust_config.json\nverify identity ...</code> with <a href=".well-known/factory/trust_config.json">this\ntrust config</a>, or through the index\'s TUF repository: once <code>sigstore --instance\n'
    yield escape(environment.finalize((undefined(name='base_url') if l_0_base_url is missing else l_0_base_url)))
    yield '/'
    yield escape(environment.finalize((undefined(name='tuf') if l_0_tuf is missing else l_0_tuf)))
    yield ' trust-instance root.json</code> (root.json from the operator, out of\nband; <a href="'
    yield escape(environment.finalize((undefined(name='tuf') if l_0_tuf is missing else l_0_tuf)))
    yield '/1.root.json">/'
    yield escape(environment.finalize((undefined(name='tuf') if l_0_tuf is missing else l_0_tuf)))
    yield '/1.root.json</a> is trust on first use), then\n<code>sigstore --instance '
    yield escape(environment.finalize((undefined(name='base_url') if l_0_base_url is missing else l_0_base_url)))
    yield '/'
    yield escape(environment.finalize((undefined(name='tuf') if l_0_tuf is missing else l_0_tuf)))
    yield ' verify identity ...</code>. Each project\npage prints the commands for each file.</p>\n<p class="muted">'
    yield escape(environment.finalize((undefined(name='count') if l_0_count is missing else l_0_count)))
    yield ' project(s); page generated '
    yield escape(environment.finalize((undefined(name='generated') if l_0_generated is missing else l_0_generated)))
    yield '.</p>\n<table id="projects"><thead><tr><th>Project</th><th>Latest</th><th>Files</th>\n<th>Status</th><th>Advisories</th><th>Last published</th></tr></thead><tbody>\n'
    yield escape(environment.finalize((undefined(name='rows') if l_0_rows is missing else l_0_rows)))
    yield '\n</tbody></table>\n'
    if (undefined(name='status') if l_0_status is missing else l_0_status):
        pass
        yield '\n<h2>Upstream and policy</h2>\n<p class="muted">As of the last watch cycle: what each recipe allows, the newest release\nupstream, what is locked and published, and how long an allowed release has waited.</p>\n<table id="status"><thead><tr><th>Component</th><th>Kind</th><th>Allowed</th>\n<th>Upstream</th><th>Locked</th><th>Published</th><th>Advisories</th><th>Waiting</th>\n</tr></thead><tbody>\n'
        for l_1_s in (undefined(name='status') if l_0_status is missing else l_0_status):
            _loop_vars = {}
            pass
            yield '<tr>\n<td>'
            yield escape(environment.finalize(environment.getattr(l_1_s, 'name')))
            if context.call(environment.getattr(l_1_s, 'get'), 'alarm', _loop_vars=_loop_vars):
                pass
                yield '\n<span class="badge bad" title="'
                yield escape(environment.finalize(context.call(environment.getattr(l_1_s, 'get'), 'alarm', _loop_vars=_loop_vars)))
                yield '">upstream alarm: pin kept</span>'
            if context.call(environment.getattr(l_1_s, 'get'), 'refused', _loop_vars=_loop_vars):
                pass
                yield '\n<span class="badge bad" title="'
                yield escape(environment.finalize(context.call(environment.getattr(l_1_s, 'get'), 'refused', _loop_vars=_loop_vars)))
                yield '">refused at signing</span>'
            yield '</td>\n<td>'
            yield escape(environment.finalize(environment.getattr(l_1_s, 'kind')))
            yield '</td><td><code>'
            yield escape(environment.finalize(environment.getattr(l_1_s, 'allowed')))
            yield '</code></td>\n<td>'
            yield escape(environment.finalize((environment.getattr(l_1_s, 'newest_upstream') or '?')))
            yield '</td><td>'
            yield escape(environment.finalize((environment.getattr(l_1_s, 'locked') or '—')))
            yield '</td>\n<td>'
            if (environment.getattr(l_1_s, 'published') != environment.getattr(l_1_s, 'locked')):
                pass
                yield '<span class="badge warn">'
                yield escape(environment.finalize((environment.getattr(l_1_s, 'published') or '—')))
                yield '</span>\n'
            else:
                pass
                yield escape(environment.finalize((environment.getattr(l_1_s, 'published') or '—')))
            yield '</td>\n<td>'
            t_3 = 1
            for l_2_a in environment.getattr(l_1_s, 'advisories'):
                _loop_vars = {}
                pass
                yield '<span class="badge bad">'
                yield escape(environment.finalize(l_2_a))
                yield '</span>\n'
                t_3 = 0
            l_2_a = missing
            if t_3:
                pass
                if (not context.call(environment.getattr(l_1_s, 'get'), 'advisories_problem')):
                    pass
                    yield 'none'
            if context.call(environment.getattr(l_1_s, 'get'), 'advisories_problem', _loop_vars=_loop_vars):
                pass
                yield '\n<span class="badge warn" title="'
                yield escape(environment.finalize(context.call(environment.getattr(l_1_s, 'get'), 'advisories_problem', _loop_vars=_loop_vars)))
                yield '">'
                yield escape(environment.finalize(('stale copy' if context.call(environment.getattr(context.call(environment.getattr(l_1_s, 'get'), 'advisories_problem', _loop_vars=_loop_vars), 'startswith'), 'stale', _loop_vars=_loop_vars) else 'NOT CHECKED')))
                yield '</span>'
            yield '</td>\n<td>'
            yield escape(environment.finalize((t_1('%g d', environment.getattr(l_1_s, 'waiting_days')) if (not t_2(environment.getattr(l_1_s, 'waiting_days'))) else '')))
            yield '</td></tr>\n'
        l_1_s = missing
        yield '</tbody></table>\n'
    yield '\n'

blocks = {'title': block_title, 'main': block_main}
debug_info = '1=12&2=17&3=27&7=54&12=56&13=60&14=64&16=68&19=72&21=74&28=77&29=81&30=85&31=87&32=90&33=93&34=97&35=101&36=108&37=111&38=121&39=124&40=127&42=132'