/**
 * Tomcat's java.util.logging records as journald shows them
 * (https://github.com/Verigreen/verigreen/issues/127): two-line records no shipped rule claims
 * (what the unclassified tally is for); each record is closed by the next one's first line.
 */
export const TOMCAT_JUL_LINES = [
  'Sep 19 12:10:59 web-9 tomcat[808]: Sep 19, 2017 12:10:59 PM org.apache.catalina.core.ApplicationContext log',
  'Sep 19 12:10:59 web-9 tomcat[808]: INFO: Log4jServletContextListener ensuring that Log4j shuts down properly.',
  'Sep 19 12:10:59 web-9 tomcat[808]: Sep 19, 2017 12:10:59 PM org.apache.catalina.core.ApplicationContext log',
  'Sep 19 12:10:59 web-9 tomcat[808]: INFO: Removing LoggerContext for [collector].',
  'Sep 19 12:11:00 web-9 tomcat[808]: Sep 19, 2017 12:11:00 PM org.apache.catalina.core.StandardService stopInternal',
].join('\n');
