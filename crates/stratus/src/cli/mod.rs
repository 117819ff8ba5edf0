//! The `stratus` command line: `serve`, and operator tools that work on the same data as a
//! running server.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::app::{Application, shutdown_signal};
use crate::clock::SystemClock;
use crate::config::{Config, Overrides};
use crate::platform::Platform;

#[derive(Debug, Parser)]
#[command(name = "stratus", version, about = "A self-hostable serverless backend in one binary")]
pub struct Cli {
    /// TOML configuration file (also `STRATUS_CONFIG`).
    #[arg(long, global = true, env = "STRATUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory holding all data (each stage in a subdirectory).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Stage whose data to use: dev, test, prod, …
    #[arg(long, global = true)]
    pub stage: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole system: edge, API, functions and their triggers, storage, mail.
    Serve(ServeArgs),
    /// Inspect the change stream and its dead letters.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Read the mail outbox.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Manage the users of a user pool (the same data a running server uses).
    Users(UsersArgs),
    /// Publish and list blog posts.
    #[command(subcommand)]
    Posts(PostsCommand),
    /// The generated site.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Upload photos to the media bucket.
    #[command(subcommand)]
    Photos(PhotosCommand),
    /// Make one thumbnail of a photo, exactly as the `thumbnail` function does.
    Thumbnail(ThumbnailArgs),
}

#[derive(Debug, Subcommand)]
pub enum PhotosCommand {
    /// Upload photos and make their thumbnails; prints each photo's id and final state. A
    /// running server's `thumbnail` function sees the same uploads and repeats the work
    /// harmlessly.
    Upload {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Recorded as the uploader.
        #[arg(long, default_value = "operator")]
        uploader: String,
    },
}

#[derive(Debug, Args)]
pub struct ThumbnailArgs {
    /// A JPEG, PNG, WebP or GIF file.
    input: PathBuf,
    /// Where to write the thumbnail; its extension (.jpg, .jpeg, .webp) gives the format.
    output: PathBuf,
    /// Long edge in pixels (a smaller photo keeps its size).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_535))]
    width: u32,
    /// The format, whatever the output is named.
    #[arg(long, value_enum)]
    format: Option<ThumbnailFormat>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ThumbnailFormat {
    Jpeg,
    Webp,
}

#[derive(Debug, Subcommand)]
pub enum PostsCommand {
    /// Create or update posts from Markdown files with YAML front matter (title, slug, tags,
    /// date, draft, summary, cover). A running server regenerates their pages within a second.
    Publish {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Recorded as the author of new posts.
        #[arg(long, default_value = "operator")]
        author: String,
    },
    /// Every post, drafts included.
    List,
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Regenerate every page of the site (after a theme change).
    Rebuild,
}

#[derive(Debug, Args)]
pub struct UsersArgs {
    /// The user pool, by name.
    #[arg(long, default_value = "default")]
    pub pool: String,
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a confirmed user. Without --password a temporary one is generated and printed,
    /// which the user must change at first sign-in.
    Create {
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long, env = "STRATUS_NEW_USER_PASSWORD")]
        password: Option<String>,
        /// Groups to add the user to (created when missing).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// List users, optionally filtered (`email = "a@b.c"`, `username ^= "ad"`).
    List {
        #[arg(long)]
        filter: Option<String>,
    },
    /// Show one user.
    Show { username: String },
    /// Add a user to a group (created when missing).
    AddToGroup { username: String, group: String },
    /// Stop a user from signing in and revoke their sessions.
    Disable { username: String },
    /// Allow a disabled user to sign in again.
    Enable { username: String },
    /// Delete a user and revoke their sessions.
    Delete { username: String },
    /// Start signing tokens with a new key (the old one stays published until its tokens expire).
    RotateKey,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Consumers, their checkpoints, backlog, dead letters and losses.
    Status,
    /// Records that consumers gave up on.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, of one consumer or of all.
    List {
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Deliver dead letters to their consumer again.
    Redrive {
        #[arg(long)]
        consumer: String,
        /// Only these dead letters (by id); all when omitted.
        #[arg(long = "id")]
        ids: Vec<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// List messages in the outbox, oldest first.
    Ls,
    /// Print one message (by id or unique id prefix).
    Show { id: String },
}

impl Cli {
    /// Loads the configuration this invocation asks for.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let listen = match &self.command {
            Command::Serve(args) => args.listen,
            _ => None,
        };
        let overrides = Overrides { data_dir: self.data_dir.clone(), stage: self.stage.clone(), listen };
        Ok(Config::load(self.config.as_deref(), std::env::vars(), &overrides)?)
    }
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(_) => serve(config).await,
        Command::Stream(command) => stream(command, &config),
        Command::Mail(command) => mail(command, &config),
        Command::Users(args) => users(args, &config).await,
        Command::Posts(command) => posts(command, &config).await,
        Command::Site(SiteCommand::Rebuild) => rebuild_site(&config).await,
        Command::Photos(PhotosCommand::Upload { files, uploader }) => {
            upload_photos(&files, &uploader, &config).await
        }
        Command::Thumbnail(args) => thumbnail(&args, &config),
    }
}

async fn upload_photos(files: &[PathBuf], uploader: &str, config: &Config) -> anyhow::Result<()> {
    use crate::media::Media;
    use crate::media::thumbnailer::Thumbnailer;
    let platform = open_platform(config)?;
    let media = Media::open(&platform, &config.media).await?;
    let thumbnailer = Thumbnailer::new(Arc::clone(&media.bucket), media.photos.clone(), &config.media);
    let watched = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = (files.len() > 1 && watched).then(|| progress_bar(files.len(), "photos"));
    let mut failures = 0;
    for file in files {
        let outcome: anyhow::Result<String> = async {
            let opened = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("cannot open {}", file.display()))?;
            let chunks = tokio_util::io::ReaderStream::with_capacity(opened, 256 * 1024);
            let uploaded =
                media.upload(&Media::new_id(), chunks, uploader, config.media.max_upload_bytes).await?;
            // Not the last attempt: the upload's event is still delivered to the `thumbnail`
            // function of a server, whose retries decide a photo's fate after a storage error.
            thumbnailer.handle(&uploaded.key, false).await?;
            let photo = media.photos.get(&uploaded.id).await?.context("the photo item vanished")?;
            match (photo.state, photo.width, photo.height) {
                (crate::media::photos::PhotoState::Ready, Some(w), Some(h)) => {
                    Ok(format!("{} ready {w}x{h}, {} thumbnails", photo.id, photo.thumbnails.len()))
                }
                (state, _, _) => {
                    anyhow::bail!("{} {}: {}", photo.id, state.as_str(), photo.reason.unwrap_or_default())
                }
            }
        }
        .await;
        let line = match outcome {
            Ok(line) => format!("{}  {line}", file.display()),
            Err(error) => {
                failures += 1;
                format!("{}  {error:#}", file.display())
            }
        };
        match &bar {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
            }
            None => println!("{line}"),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    anyhow::ensure!(failures == 0, "{failures} of {} photos were not made ready", files.len());
    Ok(())
}

fn thumbnail(args: &ThumbnailArgs, config: &Config) -> anyhow::Result<()> {
    use crate::media::thumbnail::{OutputFormat, render};
    let format = match args.format {
        Some(ThumbnailFormat::Jpeg) => OutputFormat::Jpeg,
        Some(ThumbnailFormat::Webp) => OutputFormat::Webp,
        None => args
            .output
            .extension()
            .and_then(|extension| OutputFormat::parse(&extension.to_string_lossy()))
            .with_context(|| {
                format!(
                    "cannot tell a format from {}: name it .jpg or .webp, or pass --format",
                    args.output.display()
                )
            })?,
    };
    let bytes =
        std::fs::read(&args.input).with_context(|| format!("cannot read {}", args.input.display()))?;
    let rendered = render(&bytes, &[args.width], &[format], config.media.decode_limits())
        .with_context(|| format!("{}", args.input.display()))?;
    let thumbnail = rendered.thumbnails.first().context("no thumbnail was produced")?;
    std::fs::write(&args.output, &thumbnail.bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "{} {}x{} ({} bytes)",
        args.output.display(),
        thumbnail.width,
        thumbnail.height,
        thumbnail.bytes.len()
    );
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    // A closed stdout (a supervisor that stopped reading) must not stop the server.
    let _ = writeln!(std::io::stdout(), "{}", app.banner());
    app.run(shutdown_signal()).await?;
    Ok(())
}

fn open_platform(config: &Config) -> anyhow::Result<Platform> {
    Platform::open(&config.platform(), Arc::new(SystemClock)).context("cannot open the data directory")
}

fn stream(command: StreamCommand, config: &Config) -> anyhow::Result<()> {
    let platform = open_platform(config)?;
    match command {
        StreamCommand::Status => {
            println!(
                "{:<32} {:<24} {:>12} {:>9} {:>6} {:>6}",
                "CONSUMER", "SOURCE", "CHECKPOINT", "PENDING", "DLQ", "LOST"
            );
            for status in platform.stream.consumers()? {
                println!(
                    "{:<32} {:<24} {:>12} {:>9} {:>6} {:>6}",
                    status.name,
                    status.source,
                    status.checkpoint,
                    status.pending,
                    status.dead_letters,
                    status.lost
                );
            }
        }
        StreamCommand::Dlq(DlqCommand::List { consumer }) => {
            let letters = platform.stream.dead_letters(consumer.as_deref())?;
            if letters.is_empty() {
                println!("no dead letters");
            }
            for letter in letters {
                let failed = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(
                            u64::try_from(letter.failed_at_ms).unwrap_or_default(),
                        ),
                );
                println!(
                    "#{id} consumer={consumer} seq={seq} source={source} attempts={attempts} failed={failed}\n  error: {error}\n  record: {body}",
                    id = letter.id,
                    consumer = letter.consumer,
                    seq = letter.record.seq,
                    source = letter.record.source,
                    attempts = letter.attempts,
                    error = letter.error,
                    body = letter.record.body,
                );
            }
        }
        StreamCommand::Dlq(DlqCommand::Redrive { consumer, ids }) => {
            let chosen = (!ids.is_empty()).then_some(ids.as_slice());
            let count = platform.stream.redrive(&consumer, chosen)?;
            println!("redrove {count} dead letter(s) to `{consumer}`");
        }
    }
    Ok(())
}

fn mail(command: MailCommand, config: &Config) -> anyhow::Result<()> {
    let outbox = open_platform(config)?.outbox()?;
    match command {
        MailCommand::Ls => {
            let entries = outbox.list()?;
            if entries.is_empty() {
                println!("the outbox is empty");
            }
            for entry in entries {
                let written = humantime::format_rfc3339_seconds(entry.written);
                println!("{}  {}  {:<32}  {}", entry.id, written, entry.to, entry.subject);
            }
        }
        MailCommand::Show { id } => print!("{}", outbox.read(&id)?),
    }
    Ok(())
}

async fn users(args: UsersArgs, config: &Config) -> anyhow::Result<()> {
    let platform = open_platform(config)?;
    let operator = crate::identity::operator_credentials(&config.identity, &config.stage_dir())
        .context("cannot read the operator credentials")?;
    let public_url = public_url(config, &platform);
    let identity = crate::identity::Identity::open(
        &config.identity,
        operator,
        &config.region,
        &public_url,
        &platform.db,
        &platform.mailer,
        &platform.clock,
    )?;
    let pool =
        identity.pool_named(&args.pool).with_context(|| format!("no user pool named `{}`", args.pool))?;
    match args.command {
        UsersCommand::Create { username, email, password, groups } => {
            let (temporary, permanent) = match password {
                Some(password) => (password.clone(), Some(password)),
                None => (generated_password(), None),
            };
            let attributes = [("email".to_owned(), email), ("email_verified".to_owned(), "true".to_owned())]
                .into_iter()
                .collect();
            let request = crate::identity::AdminCreateUser {
                username: username.clone(),
                attributes,
                temporary_password: Some(temporary.clone()),
            };
            pool.admin_create_user(request).await?;
            if let Some(password) = permanent {
                pool.admin_set_user_password(&username, &password, true).await?;
            }
            for group in groups {
                ensure_group(pool, &group).await?;
                pool.set_membership(&username, &group, true).await?;
            }
            let user = pool.admin_get_user(&username)?;
            print_user(&user);
            if user.status == crate::identity::UserStatus::ForceChangePassword {
                println!("temporary password: {temporary}  (must be changed at first sign-in)");
            }
        }
        UsersCommand::List { filter } => {
            let mut after: Option<String> = None;
            println!(
                "{:<24} {:<36} {:<32} {:<22} {:<8} GROUPS",
                "USERNAME", "SUB", "EMAIL", "STATUS", "ENABLED"
            );
            loop {
                let (users, next) = pool.list_users(filter.as_deref(), 60, after.as_deref())?;
                for user in &users {
                    println!(
                        "{:<24} {:<36} {:<32} {:<22} {:<8} {}",
                        user.username,
                        user.sub,
                        user.attributes.get("email").map_or("", String::as_str),
                        user.status.as_str(),
                        user.enabled,
                        user.groups.join(",")
                    );
                }
                match next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        UsersCommand::Show { username } => print_user(&pool.admin_get_user(&username)?),
        UsersCommand::AddToGroup { username, group } => {
            ensure_group(pool, &group).await?;
            pool.set_membership(&username, &group, true).await?;
            println!("added `{username}` to `{group}`");
        }
        UsersCommand::Disable { username } => {
            pool.admin_set_enabled(&username, false).await?;
            println!("disabled `{username}`; their sessions are revoked");
        }
        UsersCommand::Enable { username } => {
            pool.admin_set_enabled(&username, true).await?;
            println!("enabled `{username}`");
        }
        UsersCommand::Delete { username } => {
            pool.admin_delete_user(&username).await?;
            println!("deleted `{username}`");
        }
        UsersCommand::RotateKey => {
            let kid = pool.rotate_key().await?;
            println!(
                "pool `{}` now signs with key {kid}; restart running servers to pick it up",
                pool.name()
            );
        }
    }
    Ok(())
}

async fn ensure_group(pool: &crate::identity::UserPool, group: &str) -> anyhow::Result<()> {
    if !pool.groups()?.iter().any(|existing| existing.name == group) {
        pool.create_group(group, None, None).await?;
    }
    Ok(())
}

fn print_user(user: &crate::identity::UserRecord) {
    println!("username: {}", user.username);
    println!("status:   {}{}", user.status.as_str(), if user.enabled { "" } else { " (disabled)" });
    println!("groups:   {}", user.groups.join(", "));
    println!("mfa:      {}", if user.mfa_enabled { "software token" } else { "off" });
    for (name, value) in &user.attributes {
        println!("  {name} = {value}");
    }
}

/// A temporary password that meets the default policy.
fn generated_password() -> String {
    use rand::Rng as _;
    let mut rng = rand::rngs::OsRng;
    let letters: String = (0..12).map(|_| char::from(rng.gen_range(b'a'..=b'z'))).collect();
    format!("{letters}-A{}!", rng.gen_range(10..100))
}

/// The server's public URL: configured, or as the stage's server last recorded it (it may
/// listen on port 0), or from the listen address.
fn public_url(config: &Config, platform: &Platform) -> String {
    match (&config.server.public_url, platform.recorded_public_url()) {
        (None, Some(recorded)) => recorded,
        _ => config.server.public_url(config.server.listen),
    }
}

async fn open_blog(config: &Config) -> anyhow::Result<crate::blog::Blog> {
    let platform = open_platform(config)?;
    let public_url = public_url(config, &platform);
    Ok(crate::blog::Blog::open(&platform, &config.blog, &public_url).await?)
}

fn progress_bar(length: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(length as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what} {{msg}}"))
    {
        bar.set_style(style);
    }
    bar
}

async fn posts(command: PostsCommand, config: &Config) -> anyhow::Result<()> {
    let blog = open_blog(config).await?;
    match command {
        PostsCommand::Publish { files, author } => {
            // A bar only where someone watches; every result is printed either way.
            let watched = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let bar = (files.len() > 1 && watched).then(|| progress_bar(files.len(), "posts"));
            let print = |line: String, failed: bool| {
                let emit = || if failed { eprintln!("{line}") } else { println!("{line}") };
                match &bar {
                    Some(bar) => bar.suspend(emit),
                    None => emit(),
                }
            };
            let mut failures = 0;
            for file in &files {
                match publish_file(&blog, file, &author).await {
                    Ok(line) => print(line, false),
                    Err(error) => {
                        failures += 1;
                        print(format!("{}: {error:#}", file.display()), true);
                    }
                }
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
            }
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            if failures > 0 {
                anyhow::bail!("{failures} of {} files were not published", files.len());
            }
        }
        PostsCommand::List => {
            println!("{:<40} {:<10} {:<21} {:>4}  TITLE", "SLUG", "STATUS", "PUBLISHED", "VER");
            for post in blog.posts.list_all().await? {
                println!(
                    "{:<40} {:<10} {:<21} {:>4}  {}",
                    post.slug,
                    post.status.as_str(),
                    post.publish_date.as_deref().unwrap_or("-"),
                    post.version,
                    post.title
                );
            }
        }
    }
    Ok(())
}

/// Creates or replaces one post from a file; the line to print about it.
async fn publish_file(
    blog: &crate::blog::Blog,
    file: &std::path::Path,
    author: &str,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let stem = file.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default();
    let input = crate::blog::front_matter::parse(&text, stem)?;
    let slug = crate::blog::Slug::parse(input.slug.as_deref().unwrap_or_default())?;
    let content = input.content()?;
    let status = input.status.unwrap_or(crate::blog::PostStatus::Published);
    let post = match blog.posts.get(&slug).await? {
        None => blog.posts.create(slug, content, status, author).await?,
        Some(_) => {
            blog.posts
                .replace(&slug, None, move |post| {
                    post.title = content.title;
                    post.body = content.body;
                    post.summary = content.summary;
                    post.tags = content.tags;
                    post.cover = content.cover;
                    post.publish_date = content.publish_date.or(post.publish_date.take());
                    post.status = status;
                })
                .await?
        }
    };
    Ok(format!("{}  {}  v{}  {}", post.slug, post.status.as_str(), post.version, post.title))
}

async fn rebuild_site(config: &Config) -> anyhow::Result<()> {
    let blog = open_blog(config).await?;
    let bar = progress_bar(0, "posts");
    let pages = blog
        .generator
        .rebuild(&|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await?;
    bar.finish_and_clear();
    println!("rebuilt the site: {pages} posts with their index, tag, feed and sitemap pages");
    Ok(())
}
