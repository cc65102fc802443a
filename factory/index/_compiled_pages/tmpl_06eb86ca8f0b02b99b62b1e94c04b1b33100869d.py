from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'home_rows'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_projects = resolve('projects')
    try:
        t_1 = environment.tests['none']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No test named 'none' found.")
    pass
    for l_1_p in (undefined(name='projects') if l_0_projects is missing else l_0_projects):
        _loop_vars = {}
        pass
        yield '<tr>\n<td><a href="project/'
        yield escape(environment.finalize(environment.getattr(l_1_p, 'name')))
        yield '/">'
        yield escape(environment.finalize(environment.getattr(l_1_p, 'display_name')))
        yield '</a></td>\n<td>'
        yield escape(environment.finalize((environment.getattr(l_1_p, 'latest') or '—')))
        yield '</td>\n<td>'
        yield escape(environment.finalize(environment.getattr(l_1_p, 'files')))
        if environment.getattr(l_1_p, 'yanked'):
            pass
            yield ' ('
            yield escape(environment.finalize(environment.getattr(l_1_p, 'yanked')))
            yield ' yanked)'
        yield '</td>\n<td><span class="badge '
        yield escape(environment.finalize(('ok' if (environment.getattr(l_1_p, 'status') == 'active') else 'bad')))
        yield '">'
        yield escape(environment.finalize(environment.getattr(l_1_p, 'status')))
        yield '</span></td>\n<td>'
        if t_1(environment.getattr(l_1_p, 'advisories')):
            pass
            yield '<span class="badge warn">not checked</span>\n'
        elif environment.getattr(l_1_p, 'advisories'):
            pass
            yield '<span class="badge bad">'
            yield escape(environment.finalize(environment.getattr(l_1_p, 'advisories')))
            yield ' affected file(s)</span>\n'
        else:
            pass
            yield '<span class="badge ok">none known</span>'
        yield '</td>\n<td>'
        yield escape(environment.finalize((environment.getattr(l_1_p, 'updated') or '—')))
        yield '</td></tr>\n'
    l_1_p = missing

blocks = {}
debug_info = '1=18&2=22&3=26&4=28&5=35&6=39&7=42&9=51'