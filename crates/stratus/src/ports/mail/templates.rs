//! The environment emails are rendered in: minijinja, HTML-escaped for `.html` templates only.

use minijinja::Environment;

/// An environment holding `templates` (name, source), compiled into the binary.
pub(crate) fn environment(templates: &[(&'static str, &'static str)]) -> Environment<'static> {
    let mut environment = Environment::new();
    environment.set_auto_escape_callback(|name| {
        if name.ends_with(".html") { minijinja::AutoEscape::Html } else { minijinja::AutoEscape::None }
    });
    for (name, source) in templates {
        // Compiled-in templates are known to parse (their tests render them).
        let _ = environment.add_template(name, source);
    }
    environment
}
