from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'project'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    parent_template = None
    pass
    parent_template = environment.get_template('base', 'project')
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
    l_0_r = resolve('r')
    pass
    yield escape(environment.finalize(environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'display_name')))
    yield ' · Artifact factory'

def block_main(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    _block_vars = {}
    l_0_r = resolve('r')
    l_0_base_url = resolve('base_url')
    l_0_a = resolve('a')
    l_0_files = resolve('files')
    l_0_older = resolve('older')
    l_0_shown = resolve('shown')
    l_0_older_more = resolve('older_more')
    try:
        t_1 = environment.filters['join']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'join' found.")
    try:
        t_2 = environment.filters['length']
    except KeyError:
        @internalcode
        def t_2(*unused):
            raise TemplateRuntimeError("No filter named 'length' found.")
    try:
        t_3 = environment.tests['none']
    except KeyError:
        @internalcode
        def t_3(*unused):
            raise TemplateRuntimeError("No test named 'none' found.")
    pass
    yield '\n<h1 id="project-name">'
    yield escape(environment.finalize(environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'display_name')))
    yield '</h1>\n<p>Status: <span class="badge '
    yield escape(environment.finalize(('ok' if (environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'status') == 'active') else 'bad')))
    yield '">'
    yield escape(environment.finalize(environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'status')))
    yield '</span>\n'
    if environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'status_reason'):
        pass
        yield ' — '
        yield escape(environment.finalize(environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'status_reason')))
    yield '</p>\n<p>Install: <code>pip install --index-url '
    yield escape(environment.finalize((undefined(name='base_url') if l_0_base_url is missing else l_0_base_url)))
    yield '/simple/ '
    yield escape(environment.finalize(environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'name')))
    yield '</code>\n· Simple API: <a href="../../simple/'
    yield escape(environment.finalize(environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'name')))
    yield '/">HTML</a>,\n<a href="../../simple/'
    yield escape(environment.finalize(environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'name')))
    yield '/?format=application/vnd.pypi.simple.v1%2Bjson">JSON</a></p>\n<section id="about">\n'
    if environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'version'):
        pass
        yield '<p id="summary">'
        yield escape(environment.finalize((environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'summary') or 'No summary given.')))
        yield '</p>'
    yield '\n<dl>\n<dt>Licence</dt><dd id="license">'
    if environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'license'):
        pass
        yield '<code>'
        yield escape(environment.finalize(environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'license')))
        yield '</code>'
    yield '\n'
    for l_1_c in environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'license_classifiers'):
        _loop_vars = {}
        pass
        yield '<br><span class="classifier">'
        yield escape(environment.finalize(l_1_c))
        yield '</span>'
    l_1_c = missing
    yield '\n'
    if ((not environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'license')) and (not environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'license_classifiers'))):
        pass
        yield '<span class="badge warn">none\ndeclared</span>'
    yield '</dd>\n<dt>Described</dt><dd>'
    if environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'version'):
        pass
        yield 'from the core metadata (PEP 658) of\n'
        yield escape(environment.finalize(environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'display_name')))
        yield ' '
        yield escape(environment.finalize(environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'version')))
        yield ', as its author wrote it'
    else:
        pass
        yield 'no files'
    yield '\n'
    if environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'metadata_problem'):
        pass
        yield '<span class="badge bad">'
        yield escape(environment.finalize(environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'metadata_problem')))
        yield '</span>'
    yield '</dd>\n</dl>\n<h2>Dependencies</h2>\n'
    if environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'dependencies'):
        pass
        yield '\n<table id="dependencies"><thead><tr><th>Requirement</th><th>Extras</th><th>Versions</th>\n<th>When (marker)</th><th>On this index</th></tr></thead><tbody>\n'
        for l_1_d in environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'dependencies'):
            _loop_vars = {}
            pass
            yield '<tr>\n<td>'
            if environment.getattr(l_1_d, 'name'):
                pass
                yield '<a href="../../project/'
                yield escape(environment.finalize(environment.getattr(l_1_d, 'name')))
                yield '/">'
                yield escape(environment.finalize(environment.getattr(l_1_d, 'name')))
                yield '</a>'
            else:
                pass
                yield '\n<code>'
                yield escape(environment.finalize(environment.getattr(l_1_d, 'text')))
                yield '</code>'
            yield '</td>\n<td>'
            yield escape(environment.finalize(environment.getattr(l_1_d, 'extras')))
            yield '</td><td><code>'
            yield escape(environment.finalize((environment.getattr(l_1_d, 'specifier') or 'any')))
            yield '</code></td>\n<td><code>'
            yield escape(environment.finalize(environment.getattr(l_1_d, 'marker')))
            yield '</code></td>\n<td>'
            if environment.getattr(l_1_d, 'served'):
                pass
                yield '<span class="badge ok">served</span>\n'
            elif environment.getattr(l_1_d, 'name'):
                pass
                yield '<span class="badge bad">not on this index</span>\n(<a href="../../api/v1/why?requirement='
                yield escape(environment.finalize(environment.getattr(l_1_d, 'name')))
                yield '">why</a>)\n'
            else:
                pass
                yield '<span class="badge warn">not a valid requirement</span>'
            yield '</td></tr>\n'
        l_1_d = missing
        yield '</tbody></table>\n'
        if environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'dependencies_more'):
            pass
            yield '<p class="muted">and '
            yield escape(environment.finalize(environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'dependencies_more')))
            yield ' more not\nshown</p>'
        yield '\n'
    elif environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'version'):
        pass
        yield '<p>None declared (Requires-Dist of '
        yield escape(environment.finalize(environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'version')))
        yield ').</p>'
    yield '\n<h2>Advisory history</h2>\n'
    if t_3(environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'advisories')):
        pass
        yield '<p><span class="badge warn">not checked</span>: no served version\nhas been checked against an advisory database.</p>\n'
    elif environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'advisories'):
        pass
        yield '\n<table id="advisories"><thead><tr><th>Advisory</th><th>Summary</th><th>Fixed in</th>\n<th>Served versions (VEX status)</th></tr></thead><tbody>\n'
        for l_1_adv in environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'advisories'):
            _loop_vars = {}
            pass
            yield '<tr>\n<td>'
            yield escape(environment.finalize(environment.getattr(l_1_adv, 'id')))
            if environment.getattr(l_1_adv, 'aliases'):
                pass
                yield '<br><span class="muted">'
                yield escape(environment.finalize(environment.getattr(l_1_adv, 'aliases')))
                yield '</span>'
            yield '</td>\n<td>'
            yield escape(environment.finalize(environment.getattr(l_1_adv, 'summary')))
            yield '</td><td>'
            yield escape(environment.finalize((environment.getattr(l_1_adv, 'fixed') or 'no fix known')))
            yield '</td>\n<td>'
            for (l_2_status, l_2_versions, l_2_more) in environment.getattr(l_1_adv, 'statuses'):
                _loop_vars = {}
                pass
                yield '\n<span class="badge '
                yield escape(environment.finalize(('bad' if (l_2_status == 'affected') else 'ok')))
                yield '">'
                yield escape(environment.finalize(l_2_status))
                yield '</span>\n'
                yield escape(environment.finalize(t_1(context.eval_ctx, l_2_versions, ', ')))
                if l_2_more:
                    pass
                    yield ' and '
                    yield escape(environment.finalize(l_2_more))
                    yield ' older'
                yield '<br>\n'
            l_2_status = l_2_versions = l_2_more = missing
            yield '</td></tr>\n'
        l_1_adv = missing
        yield '</tbody></table>\n'
        if environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'advisories_more'):
            pass
            yield '<p class="muted">and '
            yield escape(environment.finalize(environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'advisories_more')))
            yield ' more\nadvisories</p>'
        yield '\n<p class="muted">The same statements, signed, for every project:\n<a href="../../.well-known/factory/vex.json">OpenVEX feed</a>.</p>\n'
    else:
        pass
        yield '<p><span class="badge ok">none known</span> for any served version.</p>'
    yield '\n</section>\n<h2>Files</h2>\n'
    t_4 = 1
    for l_1_f in (undefined(name='files') if l_0_files is missing else l_0_files):
        l_1_files_url = resolve('files_url')
        l_1_is_pure = resolve('is_pure')
        l_1_not_compared = resolve('not_compared')
        l_1_e = resolve('e')
        l_1_links = resolve('links')
        l_1_suffix = resolve('suffix')
        l_1_stock_commands = resolve('stock_commands')
        l_1_instance_commands = resolve('instance_commands')
        l_1_instance = missing
        _loop_vars = {}
        pass
        yield '\n<section class="file'
        yield escape(environment.finalize((' yanked' if environment.getattr(l_1_f, 'yanked') else cond_expr_undefined("the inline if-expression on line 60 in 'project' evaluated to false and no else section was defined."))))
        yield '" id="'
        yield escape(environment.finalize(environment.getattr(l_1_f, 'filename')))
        yield '">\n<h2>'
        yield escape(environment.finalize(environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'display_name')))
        yield ' '
        yield escape(environment.finalize(environment.getattr(l_1_f, 'version')))
        yield '\n'
        if environment.getattr(l_1_f, 'yanked'):
            pass
            yield '<span class="badge bad">yanked'
            if environment.getattr(l_1_f, 'yanked_reason'):
                pass
                yield ': '
                yield escape(environment.finalize(environment.getattr(l_1_f, 'yanked_reason')))
            yield '</span>'
        yield '</h2>\n<dl>\n<dt>File</dt><dd><a href="'
        yield escape(environment.finalize((undefined(name='files_url') if l_1_files_url is missing else l_1_files_url)))
        yield '/'
        yield escape(environment.finalize(environment.getattr(l_1_f, 'filename')))
        yield '">'
        yield escape(environment.finalize(environment.getattr(l_1_f, 'filename')))
        yield '</a>\n ('
        yield escape(environment.finalize(environment.getattr(l_1_f, 'size')))
        yield ' bytes)</dd>\n<dt>SHA-256</dt><dd class="digest">'
        yield escape(environment.finalize(environment.getattr(l_1_f, 'sha256')))
        yield '</dd>\n<dt>Requires Python</dt><dd>'
        yield escape(environment.finalize((environment.getattr(l_1_f, 'requires_python') or 'any')))
        yield '</dd>\n<dt>Published</dt><dd>'
        yield escape(environment.finalize(environment.getattr(l_1_f, 'upload_time')))
        yield '</dd>\n<dt>Built</dt><dd>'
        yield escape(environment.finalize((context.call(environment.getattr(environment.getattr(l_1_f, 'built_from'), 'get'), 'finished_on', _loop_vars=_loop_vars) or 'unknown')))
        yield '\n'
        if context.call(environment.getattr(environment.getattr(l_1_f, 'built_from'), 'get'), 'builder_image', _loop_vars=_loop_vars):
            pass
            yield ' in\n<code>'
            yield escape(environment.finalize(context.call(environment.getattr(environment.getattr(l_1_f, 'built_from'), 'get'), 'builder_image', _loop_vars=_loop_vars)))
            yield '</code>'
        yield '\n'
        if context.call(environment.getattr(environment.getattr(l_1_f, 'built_from'), 'get'), 'builder_image_id', _loop_vars=_loop_vars):
            pass
            yield '\n<span class="digest">('
            yield escape(environment.finalize(context.call(environment.getattr(environment.getattr(l_1_f, 'built_from'), 'get'), 'builder_image_id', _loop_vars=_loop_vars)))
            yield ')</span>'
        yield '</dd>\n<dt>Built from</dt><dd>'
        if environment.getattr(l_1_f, 'source'):
            pass
            yield '\n'
            if environment.getattr(l_1_f, 'source_stored'):
                pass
                yield '<a href="../../'
                yield escape(environment.finalize(environment.getattr(l_1_f, 'source_stored')))
                yield '">'
                yield escape(environment.finalize(environment.getattr(environment.getattr(l_1_f, 'source'), 'filename')))
                yield '</a>'
            else:
                pass
                yield escape(environment.finalize(environment.getattr(environment.getattr(l_1_f, 'source'), 'filename')))
            yield '\n<br>upstream SHA-256 <span class="digest">'
            yield escape(environment.finalize(environment.getattr(environment.getattr(l_1_f, 'source'), 'sha256')))
            yield '</span>\n'
            if environment.getattr(environment.getattr(l_1_f, 'source'), 'url'):
                pass
                yield '<br>from <code>'
                yield escape(environment.finalize(environment.getattr(environment.getattr(l_1_f, 'source'), 'url')))
                yield '</code>'
            yield '\n'
        else:
            pass
            yield 'unknown'
        yield '</dd>\n<dt>Signed by</dt><dd>'
        if environment.getattr(l_1_f, 'signer'):
            pass
            yield '<code>'
            yield escape(environment.finalize(context.call(environment.getattr(environment.getattr(l_1_f, 'signer'), 'get'), 'identity', '?', _loop_vars=_loop_vars)))
            yield '</code>\n'
            if context.call(environment.getattr(environment.getattr(l_1_f, 'signer'), 'get'), 'issuer', _loop_vars=_loop_vars):
                pass
                yield ', issuer <code>'
                yield escape(environment.finalize(context.call(environment.getattr(environment.getattr(l_1_f, 'signer'), 'get'), 'issuer', _loop_vars=_loop_vars)))
                yield '</code>'
            yield '\n'
        else:
            pass
            yield '<span class="badge warn">no signer identity recorded</span>'
        yield '</dd>\n<dt>Advisories</dt><dd>'
        if t_3(environment.getattr(l_1_f, 'advisories')):
            pass
            yield '<span class="badge warn">not checked</span>\n'
        elif environment.getattr(l_1_f, 'advisories'):
            pass
            for l_2_a in environment.getattr(l_1_f, 'advisories'):
                _loop_vars = {}
                pass
                yield '<span class="badge bad">'
                yield escape(environment.finalize(context.call(environment.getattr(l_2_a, 'get'), 'id', _loop_vars=_loop_vars)))
                yield '</span>\n'
                yield escape(environment.finalize(context.call(environment.getattr(l_2_a, 'get'), 'summary', '', _loop_vars=_loop_vars)))
                if context.call(environment.getattr(l_2_a, 'get'), 'fixed', _loop_vars=_loop_vars):
                    pass
                    yield ' (fixed in '
                    yield escape(environment.finalize(context.call(environment.getattr(l_2_a, 'get'), 'fixed', _loop_vars=_loop_vars)))
                    yield ')'
                yield '<br>'
            l_2_a = missing
            yield '\n'
        else:
            pass
            yield '<span class="badge ok">none known</span>'
        yield '\n'
        if environment.getattr(l_1_f, 'advisories_checked'):
            pass
            yield '\n<span class="muted"> checked '
            yield escape(environment.finalize(environment.getattr(l_1_f, 'advisories_checked')))
            yield '</span>'
        yield '</dd>\n'
        if ((environment.getattr(l_1_f, 'filename') in environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'equivalence')) or context.call((undefined(name='is_pure') if l_1_is_pure is missing else l_1_is_pure), environment.getattr(l_1_f, 'filename'), _loop_vars=_loop_vars)):
            pass
            yield '\n'
            l_1_e = context.call(environment.getattr(environment.getattr((undefined(name='a') if l_0_a is missing else l_0_a), 'equivalence'), 'get'), environment.getattr(l_1_f, 'filename'), (undefined(name='not_compared') if l_1_not_compared is missing else l_1_not_compared), _loop_vars=_loop_vars)
            _loop_vars['e'] = l_1_e
            yield '\n<dt>Upstream equivalence</dt><dd class="equivalence">\n<span class="badge '
            yield escape(environment.finalize(('ok' if (environment.getattr((undefined(name='e') if l_1_e is missing else l_1_e), 'verdict') == 'equivalent') else 'warn')))
            yield '">'
            yield escape(environment.finalize(environment.getattr((undefined(name='e') if l_1_e is missing else l_1_e), 'verdict')))
            yield '</span>\n'
            if environment.getattr((undefined(name='e') if l_1_e is missing else l_1_e), 'upstream'):
                pass
                yield " with upstream's <code>"
                yield escape(environment.finalize(environment.getattr((undefined(name='e') if l_1_e is missing else l_1_e), 'upstream')))
                yield '</code>'
            yield '\n'
            if environment.getattr((undefined(name='e') if l_1_e is missing else l_1_e), 'note'):
                pass
                yield '<br>'
                yield escape(environment.finalize(environment.getattr((undefined(name='e') if l_1_e is missing else l_1_e), 'note')))
            yield '\n'
            if environment.getattr((undefined(name='e') if l_1_e is missing else l_1_e), 'reasons'):
                pass
                yield '<ul>'
                for l_2_why in environment.getattr((undefined(name='e') if l_1_e is missing else l_1_e), 'reasons'):
                    _loop_vars = {}
                    pass
                    yield '<li><code>'
                    yield escape(environment.finalize(l_2_why))
                    yield '</code></li>'
                l_2_why = missing
                yield '\n'
                if environment.getattr((undefined(name='e') if l_1_e is missing else l_1_e), 'more'):
                    pass
                    yield '<li>and '
                    yield escape(environment.finalize(environment.getattr((undefined(name='e') if l_1_e is missing else l_1_e), 'more')))
                    yield ' more</li>'
                yield '</ul>'
            yield '\n'
            if (environment.getattr((undefined(name='e') if l_1_e is missing else l_1_e), 'verdict') != 'not compared'):
                pass
                yield '<a\n href="'
                yield escape(environment.finalize((undefined(name='files_url') if l_1_files_url is missing else l_1_files_url)))
                yield '/'
                yield escape(environment.finalize(environment.getattr(l_1_f, 'filename')))
                yield '.equivalence.json">signed statement</a>'
            yield '\n</dd>'
        yield '\n<dt>Attestations</dt><dd>'
        for (l_2_kind, l_2_label) in (undefined(name='links') if l_1_links is missing else l_1_links):
            _loop_vars = {}
            pass
            if (l_2_kind in environment.getattr(l_1_f, 'sidecars')):
                pass
                yield '\n<a class="sidecar"\n href="'
                yield escape(environment.finalize((undefined(name='files_url') if l_1_files_url is missing else l_1_files_url)))
                yield '/'
                yield escape(environment.finalize(environment.getattr(l_1_f, 'filename')))
                yield escape(environment.finalize(context.call((undefined(name='suffix') if l_1_suffix is missing else l_1_suffix), l_2_kind, _loop_vars=_loop_vars)))
                yield escape(environment.finalize(('/' if (l_2_kind == 'in-toto') else cond_expr_undefined("the inline if-expression on line 104 in 'project' evaluated to false and no else section was defined."))))
                yield '">'
                yield escape(environment.finalize(l_2_label))
                yield '</a> ·\n'
        l_2_kind = l_2_label = missing
        yield '<a href="'
        yield escape(environment.finalize((undefined(name='files_url') if l_1_files_url is missing else l_1_files_url)))
        yield '/'
        yield escape(environment.finalize(environment.getattr(l_1_f, 'filename')))
        yield escape(environment.finalize(context.call((undefined(name='suffix') if l_1_suffix is missing else l_1_suffix), 'metadata', _loop_vars=_loop_vars)))
        yield '">core metadata</a></dd>\n</dl>\n<details><summary>How to verify this file</summary>\n<p>With stock tools (curl, <code>sigstore</code>, <code>in-toto-verify</code>) and only\nwhat this index serves, in an empty directory:</p>\n<pre class="stock-verify">'
        yield escape(environment.finalize(context.call((undefined(name='stock_commands') if l_1_stock_commands is missing else l_1_stock_commands), (undefined(name='r') if l_0_r is missing else l_0_r), l_1_f, _loop_vars=_loop_vars)))
        yield '</pre>\n'
        l_1_instance = context.call((undefined(name='instance_commands') if l_1_instance_commands is missing else l_1_instance_commands), (undefined(name='r') if l_0_r is missing else l_0_r), l_1_f, _loop_vars=_loop_vars)
        _loop_vars['instance'] = l_1_instance
        if (undefined(name='instance') if l_1_instance is missing else l_1_instance):
            pass
            yield '\n<p>Or through the index\'s TUF repository (<code>sigstore --instance</code>): trust its root\nonce, and every verify then takes the trusted root from the index, signed under the root you\npinned. Get <code>root.json</code> from the index\'s operator, out of band; the copy this\nindex serves at <a href="../../tuf/1.root.json">/tuf/1.root.json</a> is trust on first use\n(the first fetch proves nothing; later changes must be signed by that root):</p>\n<pre class="stock-instance">'
            yield escape(environment.finalize((undefined(name='instance') if l_1_instance is missing else l_1_instance)))
            yield '</pre>'
        yield '\n<p>Or everything at once (signature, SLSA provenance, SBOM, PEP 740, in-toto, advisories):</p>\n<pre>factory verify --index '
        yield escape(environment.finalize((undefined(name='base_url') if l_0_base_url is missing else l_0_base_url)))
        yield ' "'
        yield escape(environment.finalize(environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'name')))
        yield '=='
        yield escape(environment.finalize(environment.getattr(l_1_f, 'version')))
        yield '"</pre>\n<p>The trust config, trusted root and public keys are at\n<a href="../../.well-known/factory/">/.well-known/factory/</a>; fetched from this index\nthey only show that the files are what it signed: pin them (the deployment\'s\n<code>keys/</code>) to trust the index itself. The provenance object (PEP 740) is also at\n<code>'
        yield escape(environment.finalize((undefined(name='base_url') if l_0_base_url is missing else l_0_base_url)))
        yield '/integrity/'
        yield escape(environment.finalize(environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'name')))
        yield '/'
        yield escape(environment.finalize(environment.getattr(l_1_f, 'version')))
        yield '/'
        yield escape(environment.finalize(environment.getattr(l_1_f, 'filename')))
        yield '/provenance</code>.</p>\n</details>\n</section>\n'
        t_4 = 0
    l_1_f = l_1_files_url = l_1_is_pure = l_1_not_compared = l_1_e = l_1_links = l_1_suffix = l_1_stock_commands = l_1_instance_commands = l_1_instance = missing
    if t_4:
        pass
        yield '<p>No files published.</p>'
    yield '\n'
    if (undefined(name='older') if l_0_older is missing else l_0_older):
        pass
        yield '\n<h2>Older versions</h2>\n<p class="muted">'
        yield escape(environment.finalize(t_2((undefined(name='older') if l_0_older is missing else l_0_older))))
        yield ' older file(s): the newest '
        yield escape(environment.finalize((undefined(name='shown') if l_0_shown is missing else l_0_shown)))
        yield ' versions are shown in\nfull above; each file here has the same sidecars and the same verify commands.</p>\n<table id="older"><thead><tr><th>Version</th><th>File</th><th>SHA-256</th></tr></thead><tbody>\n'
        for l_1_f in (undefined(name='older') if l_0_older is missing else l_0_older):
            l_1_files_url = resolve('files_url')
            _loop_vars = {}
            pass
            yield '<tr><td>'
            yield escape(environment.finalize(environment.getattr(l_1_f, 'version')))
            if environment.getattr(l_1_f, 'yanked'):
                pass
                yield '\n<span class="badge bad">yanked</span>'
            yield '</td>\n<td><a href="'
            yield escape(environment.finalize((undefined(name='files_url') if l_1_files_url is missing else l_1_files_url)))
            yield '/'
            yield escape(environment.finalize(environment.getattr(l_1_f, 'filename')))
            yield '">'
            yield escape(environment.finalize(environment.getattr(l_1_f, 'filename')))
            yield '</a></td>\n<td class="digest">'
            yield escape(environment.finalize(environment.getattr(l_1_f, 'sha256')))
            yield '</td></tr>\n'
        l_1_f = l_1_files_url = missing
        yield '</tbody></table>\n'
        if (undefined(name='older_more') if l_0_older_more is missing else l_0_older_more):
            pass
            yield '<p class="muted">and '
            yield escape(environment.finalize((undefined(name='older_more') if l_0_older_more is missing else l_0_older_more)))
            yield ' older file(s): the\n<a href="../../simple/'
            yield escape(environment.finalize(environment.getattr((undefined(name='r') if l_0_r is missing else l_0_r), 'name')))
            yield '/">Simple API page</a> lists every file.</p>'
        yield '\n'
    yield '\n'

blocks = {'title': block_title, 'main': block_main}
debug_info = '1=12&2=17&3=29&4=63&5=65&6=69&7=74&8=78&9=80&11=82&13=88&14=94&15=102&17=106&18=109&19=117&22=123&25=126&26=130&27=140&28=143&29=147&30=149&31=152&32=155&35=163&37=169&39=175&41=178&44=181&45=185&46=192&47=196&48=200&49=204&52=215&59=226&60=239&61=243&62=247&63=250&65=256&66=262&67=264&68=266&69=268&70=270&71=272&72=275&73=278&74=281&75=284&76=287&77=296&78=298&79=300&81=310&82=315&84=325&85=328&86=336&87=337&89=349&90=352&91=355&92=358&94=361&95=365&96=371&97=376&98=387&99=394&100=397&102=403&104=409&105=415&106=419&107=422&112=424&113=426&119=431&121=434&126=440&130=454&132=457&135=461&137=471&138=477&140=481&141=486'